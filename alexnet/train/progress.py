"""The typed progress event a training run emits, and the small object that keeps and sends it.

    def show(p: Progress):
        if p.phase is Phase.TRAIN: print(p.step, p.loss)
    train(cfg, progress=show)

Both consumers (the CLI's tqdm bars, the app's Trainer) read the same fields; nothing is
passed around as an untyped dict or a bare phase string.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Callable


class Phase(enum.StrEnum):
    DECODE = "decode"        # step/steps count images decoded
    FEATURES = "features"    # step/steps count images through the frozen trunk
    TRAIN = "train"          # step/steps count optimizer steps over the whole run
    VAL = "val"              # sent before validating (val_acc still the last epoch's) and after it
    DONE = "done"


@dataclass(frozen=True)
class Progress:
    phase: Phase = Phase.DECODE
    epoch: int = 0
    epochs: int = 0
    step: int = 0
    steps: int = 0
    loss: float | None = None          # running training loss of this epoch
    acc: float | None = None           # running training accuracy of this epoch
    val_acc: float | None = None       # the last finished validation
    img_per_s: float | None = None
    eta_s: float | None = None
    size: int | None = None            # this epoch's training input size (progressive resizing)


class Reporter:
    """The run's current `Progress`; `update(**fields)` changes some fields and sends the whole event."""

    def __init__(self, epochs: int, callback: Callable[[Progress], None] | None):
        self.now = Progress(epochs=epochs)
        self.callback = callback

    def update(self, **fields) -> None:
        self.now = replace(self.now, **fields)
        if self.callback is not None:
            self.callback(self.now)
