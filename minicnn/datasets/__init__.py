"""Datasets and the preprocessing that goes with them."""
from .preprocessing import augment, channel_stats, minibatches, standardize

__all__ = ["augment", "channel_stats", "minibatches", "standardize"]
