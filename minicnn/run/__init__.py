"""Running the main job, ``examples/train_cifar.py``: what its command line needs besides the recipe.

- :mod:`~minicnn.run.options`: the option parser and its checks (``parse_args``, ``build_parser``);
- :mod:`~minicnn.run.resume`: the settings a resumed run keeps (``RUN_KEYS``), ``plan_resume``, the resume hint;
- :mod:`~minicnn.run.inputs`: the data as the options ask for it, a model to fine-tune;
- :mod:`~minicnn.run.safety`: signals, exit statuses, empty folders removed (``run_safely``);
- :mod:`~minicnn.run.report`: the final test evaluation, ``metrics.json``, ``predictor.npz``, the pictures.

Nothing in the library imports this package; the script does.
"""

from .inputs import data_options, describe_data, initial_model, split_as_flags
from .options import DEFAULT_EPOCHS, build_parser, dropout_rates, md5_or_none, number, parse_args, whole_number
from .report import finish
from .resume import LEGACY_CONFIG, RUN_KEYS, how_to_resume, plan_resume, run_config, settings_as_flags
from .safety import run_safely

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
