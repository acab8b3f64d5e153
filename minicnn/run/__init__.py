"""Run management: what a training run needs around the book, in one room.

Used by any training program:

- :mod:`~minicnn.run.callbacks` (Keras's ``ModelCheckpoint``, ``CSVLogger``, ``EarlyStopping``, ...),
  :mod:`~minicnn.run.checkpoint` (the ``.npz`` file, checked before it is read),
  :mod:`~minicnn.run.outputs` (atomic writes, output folders), :mod:`~minicnn.run.interrupts`
  (Ctrl-C and SIGTERM as a clean stop), :mod:`~minicnn.run.memory` (out-of-memory messages);
- the recipe's parts: :mod:`~minicnn.run.schedules` (learning-rate schedules),
  :mod:`~minicnn.run.recipes` (named recipes), :mod:`~minicnn.run.whitening` (a whitened first
  layer), :mod:`~minicnn.run.tta` (test-time augmentation).

The main job's command line, ``examples/train_cifar.py``, which nothing in the library imports:

- :mod:`~minicnn.run.options`: the option parser and its checks (``parse_args``, ``build_parser``);
- :mod:`~minicnn.run.resume`: the settings a resumed run keeps (``RUN_KEYS``), ``plan_resume``, the resume hint;
- :mod:`~minicnn.run.inputs`: the data as the options ask for it, a model to fine-tune;
- :mod:`~minicnn.run.safety`: signals, exit statuses, empty folders removed (``run_safely``);
- :mod:`~minicnn.run.report`: the final test evaluation, ``metrics.json``, ``predictor.npz``, the pictures.
- :mod:`~minicnn.run.explore`: ``--explore``, the explorer watching the run beside it.
"""

# The command line's names, from their modules on first use: importing minicnn.run.checkpoint
from .._moved import names_from

# (or any other module of the room) loads none of them.
_WHERE = {
    "data_options": "inputs",
    "describe_data": "inputs",
    "initial_model": "inputs",
    "named_model": "inputs",
    "split_as_flags": "inputs",
    "DEFAULT_EPOCHS": "options",
    "build_parser": "options",
    "dropout_rates": "options",
    "md5_or_none": "options",
    "number": "options",
    "parse_args": "options",
    "whole_number": "options",
    "finish": "report",
    "LEGACY_CONFIG": "resume",
    "RUN_KEYS": "resume",
    "how_to_resume": "resume",
    "plan_resume": "resume",
    "run_config": "resume",
    "settings_as_flags": "resume",
    "run_safely": "safety",
}


__getattr__ = names_from(__name__, {name: f".{module}" for name, module in _WHERE.items()})

__all__ = [
    "DEFAULT_EPOCHS",
    "LEGACY_CONFIG",
    "RUN_KEYS",
    "build_parser",
    "data_options",
    "describe_data",
    "dropout_rates",
    "finish",
    "how_to_resume",
    "initial_model",
    "named_model",
    "md5_or_none",
    "number",
    "parse_args",
    "plan_resume",
    "run_config",
    "run_safely",
    "settings_as_flags",
    "split_as_flags",
    "whole_number",
]
