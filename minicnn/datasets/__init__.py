"""Datasets and the preprocessing that goes with them."""

from ..training import minibatches  # the iterator fit uses, re-exported for scripts
from .cifar10 import CIFAR10_CLASSES, OFFICIAL_MD5, OFFICIAL_URL, DatasetError, default_data_dir, load_cifar10
from .images import ImageDataset, image_dataset_from_directory
from .preprocessing import augment, channel_stats, crop_flip, standardize
from .splits import SplitLeavesNoTraining, cifar10_splits

__all__ = [
    "load_cifar10",
    "CIFAR10_CLASSES",
    "OFFICIAL_URL",
    "OFFICIAL_MD5",
    "DatasetError",
    "default_data_dir",
    "augment",
    "crop_flip",
    "channel_stats",
    "minibatches",
    "standardize",
    "cifar10_splits",
    "SplitLeavesNoTraining",
    "image_dataset_from_directory",
    "ImageDataset",
]
