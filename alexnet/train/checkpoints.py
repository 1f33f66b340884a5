"""Where a run's files go and how an epoch's end is written and read back.

`<stem>-last.safetensors` (+ .json sidecar, + `.state.pt` with the optimizer for --resume) and
`<stem>-best.safetensors`, all written atomically at epoch ends only, so a cancel or crash
mid-epoch leaves the previous ones intact.
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alexnet import weights as W

from .config import ConfigError, TrainConfig


def with_ext(stem: Path, ext: str) -> Path:
    """stem + ext without Path.with_suffix, which would eat a dotted name such as 'run-0.5-last'."""
    return stem.with_name(stem.name + ext)


@dataclass(frozen=True)
class Stems:
    last: Path
    best: Path

    @classmethod
    def of(cls, cfg: TrainConfig, data_name: str) -> "Stems":
        """--out, or <cache>/checkpoints/<data>-<arch|ft>-<mode>-<time>."""
        if cfg.out:
            stem = Path(cfg.out).expanduser()
            stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
        else:
            when = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            stem = W.cache_dir() / "checkpoints" / f"{data_name}-{cfg.arch if cfg.scratch else 'ft'}-{cfg.mode}-{when}"
        return cls(Path(f"{stem}-last"), Path(f"{stem}-best"))

    @property
    def last_file(self) -> Path:
        return with_ext(self.last, ".safetensors")

    @property
    def best_file(self) -> Path:
        return with_ext(self.best, ".safetensors")

    @property
    def state_file(self) -> Path:
        return with_ext(self.last, ".state.pt")

    def existing(self) -> tuple[Path | None, Path | None]:
        return tuple(f if f.exists() else None for f in (self.last_file, self.best_file))


def save_epoch(stems: Stems, model: nn.Module, meta: dict, state: dict, optimizer, is_best: bool) -> tuple[Path, Path | None]:
    """The optimizer state first, then the last checkpoint, then (if it improved) the best one."""
    W.atomic_write_bytes(stems.state_file, lambda tmp: torch.save(dict(state, optimizer=optimizer.state_dict()), tmp))
    last = W.save_checkpoint(stems.last_file, model, dict(meta, kind="last"))
    best = W.save_checkpoint(stems.best_file, model, dict(meta, kind="best")) if is_best else None
    return last, best


def load_resume(stems: Stems, model: nn.Module, optimizer, classes: list[str], device) -> tuple[dict, dict]:
    """Weights and optimizer from the last epoch's files; returns (state, meta). Refuses a mismatched pair."""
    if not stems.last_file.exists() or not stems.state_file.exists():
        raise ConfigError(f"--resume: no checkpoint {stems.last}.safetensors with its .state.pt to continue from")
    saved, meta = W.load_checkpoint(stems.last_file)
    if meta["classes"] != classes:
        raise ConfigError(f"--resume: {stems.last.name} was trained on classes {meta['classes']}, "
                          f"this data has {classes}")
    model.load_state_dict(saved.state_dict())
    st = torch.load(stems.state_file, map_location=device, weights_only=True)
    if st["step"] != meta["train_state"]["step"]:
        raise ConfigError(f"--resume: {stems.state_file.name} (step {st['step']}) does not match "
                          f"{stems.last.name} (step {meta['train_state']['step']}); start a new run")
    optimizer.load_state_dict(st["optimizer"])
    return dict(step=st["step"], epoch=st["epoch"], best=st["best"]), meta
