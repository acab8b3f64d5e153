"""Callbacks for ``fit``: hooks called as training runs, with Keras's names.

Callback                  the hooks (on_train_begin/end, on_epoch_begin/end, on_train_batch_end), ``self.model``
History                   every epoch's logs, ``history.history`` (what ``fit`` returns)
CSVLogger                 one row per epoch in a CSV file (kept across a resumed run)
ModelCheckpoint           the model saved every epoch (or only its best), atomically; a run's restart point
FilterTimeline            the first Conv2D's kernels after every epoch in one small .npz (the explorer's timeline)
LearningRateScheduler     ``schedule(epoch, lr) -> lr`` before every epoch
EarlyStopping             stop when a monitored number stops improving (optionally restoring the best weights)
ReduceLROnPlateau         divide the learning rate when a monitored number stops improving
"""

from .base import Callback, History
from .csv_logger import CSVLogger
from .filter_timeline import FilterTimeline, read_filter_timeline
from .model_checkpoint import ModelCheckpoint, SettingsChanged
from .monitors import EarlyStopping, LearningRateScheduler, ReduceLROnPlateau

__all__ = [
    "Callback",
    "History",
    "CSVLogger",
    "ModelCheckpoint",
    "SettingsChanged",
    "FilterTimeline",
    "read_filter_timeline",
    "LearningRateScheduler",
    "EarlyStopping",
    "ReduceLROnPlateau",
]
