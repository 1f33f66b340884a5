"""The training lab: the paper net trained once per (variant, seed), shared by every section that needs it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from alexnet import data as D
from alexnet import device as dev_
from alexnet import weights as W
from alexnet.train import TrainConfig, train
from report.config import VARIANTS, PaperConfig


@dataclass
class Run:
    variant: str
    seed: int
    history: list[dict]          # alexnet.train's per-epoch rows
    checkpoint: Path
    seconds: float               # wall time of the train() call
    meta: dict

    @property
    def val_acc(self) -> float:
        return self.history[-1]["val_acc"]


class Lab:
    """Trains the paper net per (variant, seed) once and hands the runs to every section that needs them.

    Checkpoints go to `workdir` (the caller deletes it). Each run's initial weights, split and
    batches follow from its seed alone (alexnet.train), so a run is the same whichever section asks first.
    """

    def __init__(self, cfg: PaperConfig, workdir: Path, log=None):
        self.cfg, self.workdir = cfg, Path(workdir)
        self.root = D.find_data_dir(cfg.data)
        self.log = log or (lambda msg: None)
        self.device = dev_.pick(cfg.device)
        self._runs: dict[tuple[str, int], Run] = {}
        self._decoded: D.Decoded | None = None
        self._models: dict[tuple[str, int], tuple[nn.Module, dict]] = {}

    def decoded(self) -> D.Decoded:
        if self._decoded is None:
            self._decoded = D.decode_folder(self.root, self.cfg.decode_size)
        return self._decoded

    def split(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The (train, val) indices that alexnet.train uses for this seed."""
        labels = self.decoded().labels
        keep = D.stratified_subset(labels, self.cfg.limit, seed)
        tr, va = D.stratified_split(labels[keep], TrainConfig.val_fraction, seed)
        return keep[tr], keep[va]

    def run(self, variant: str, seed: int) -> Run:
        key = (variant, seed)
        if key not in self._runs:
            c = self.cfg
            cfg = TrainConfig(data=str(self.root), mode="scratch", arch="paper", epochs=c.epochs,
                              batch_size=c.batch_size, recipe=c.recipe, lr=c.lr, input_size=c.size,
                              image_size=c.decode_size, limit=c.limit, seed=seed, device=c.device, width=c.width,
                              out=str(self.workdir / f"{variant}-s{seed}"), log_every=1000, **VARIANTS[variant])
            t0 = time.perf_counter()
            result = train(cfg)
            seconds = time.perf_counter() - t0
            run = Run(variant, seed, result.history, result.checkpoint, seconds, result.meta)
            self._runs[key] = run
            self.log(f"  {variant:<10} seed {seed}: val {run.val_acc:.3f}, train {run.history[-1]['train_acc']:.3f} "
                     f"({seconds:.0f} s)")
        return self._runs[key]

    def model(self, variant: str, seed: int) -> tuple[nn.Module, dict]:
        key = (variant, seed)
        if key not in self._models:
            self._models[key] = W.load_checkpoint(self.run(variant, seed).checkpoint)
        return self._models[key]

    def chance(self) -> float:
        """Accuracy of always answering the largest class."""
        labels = self.decoded().labels
        return float(torch.bincount(labels).max()) / len(labels)
