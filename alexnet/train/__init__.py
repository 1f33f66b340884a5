"""Train AlexNet on an image folder: fine-tune from saved weights, or from scratch.

    from alexnet.train import TrainConfig, train
    result = train(TrainConfig(mode="scratch"), progress=print, cancel=stop_event)
    python -m alexnet.train --help

The app calls `train(...)`; the CLI only builds that config from its flags. Read in order:
- config.py      TrainConfig, the recipes, the allowed values, the checks made before any work
- progress.py    the typed `Progress` event the CLI's bars and the app's Trainer both consume
- surgery.py     the model: built from scratch, or a source model with a new fc8 and frozen layers
- batches.py     where batches come from: images on the device, or cached frozen-trunk features
- loop.py        one epoch, one validation, the lr schedule, the optimizer
- checkpoints.py file names, atomic epoch-end writes, --resume
- dist.py        torchrun processes
- run.py         `train()`: all of the above, top to bottom
- cli.py         flags -> TrainConfig -> train, with tqdm
"""
from .checkpoints import Stems
from .cli import config_from_args, get_args_parser, main
from .config import (DEFAULT_RECIPE, FINETUNE_DEPTHS, FREEZE_CHOICES, INIT_CONV1, MODES, OPTIMIZERS, RECIPES, SCHEDULES, ConfigError,
                     TrainConfig, check_config, epoch_sizes, resolve)
from .loop import lr_at
from .progress import Phase, Progress
from .run import TrainResult, train

__all__ = ["DEFAULT_RECIPE", "FINETUNE_DEPTHS", "FREEZE_CHOICES", "INIT_CONV1", "MODES", "OPTIMIZERS", "RECIPES", "SCHEDULES",
           "ConfigError", "Phase", "Progress", "Stems", "TrainConfig", "TrainResult", "check_config",
           "config_from_args", "epoch_sizes", "get_args_parser", "lr_at", "main", "resolve", "train"]
