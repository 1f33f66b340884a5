"""The typed progress event a training run emits, and the small object that keeps and sends it.

    def show(p: Progress):
        if p.phase is Phase.TRAIN: print(p.step, p.loss)
    train(cfg, progress=show)

Both consumers (the CLI's tqdm bars, the app's Trainer) read the same fields; nothing is
passed around as an untyped dict or a bare phase string.

Where the time goes: the Reporter starts its clock when the run starts and books every second to the
phase then current, so `phase_seconds` (decode, model, features, train, val, save) adds up to the run's
wall time. A first fine-tune is mostly decode + features; a second one finds both cached.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field, replace
from typing import Callable


class Phase(enum.StrEnum):
    DECODE = "decode"        # step/steps count images decoded (or read back from the decode cache)
    MODEL = "model"          # the model built or loaded, its layers frozen
    FEATURES = "features"    # step/steps count images through the frozen trunk
    TRAIN = "train"          # step/steps count optimizer steps over the whole run
    VAL = "val"              # sent before validating (val_acc still the last epoch's) and after it
    SAVE = "save"            # checkpoint files being written
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
    phase_seconds: dict = field(default_factory=dict)   # phase name -> seconds so far (see the module's doc)

    def time_split(self, names: dict[str, str] | None = None) -> str:
        """'decode 12 s, features 41 s, train 3 s, ...': where the run's time went, in phase order (`names`: a
        phase's word in another language)."""
        def secs(s: float) -> str:
            return f"{s:.2f} s" if s < 1 else f"{s:.1f} s" if s < 10 else f"{s:.0f} s"
        names = names or {}
        return ", ".join(f"{names.get(name, name)} {secs(s)}" for name, s in self.phase_seconds.items() if s >= 0.01)


class Reporter:
    """The run's current `Progress`; `update(**fields)` changes some fields and sends the whole event."""

    def __init__(self, epochs: int, callback: Callable[[Progress], None] | None):
        self.now = Progress(epochs=epochs)
        self.callback = callback
        self.seconds = {str(p): 0.0 for p in Phase if p is not Phase.DONE}
        self._since = time.perf_counter()

    def _book(self) -> None:
        """Book the time since the last booking to the phase now current."""
        now = time.perf_counter()
        if self.now.phase is not Phase.DONE:
            self.seconds[str(self.now.phase)] += now - self._since
        self._since = now

    def update(self, **fields) -> None:
        self._book()
        self.now = replace(self.now, **fields, phase_seconds=dict(self.seconds))
        if self.callback is not None:
            self.callback(self.now)
