"""One epoch of training and one validation pass, the learning-rate schedule and the optimizer.

Plain loops in the manner of torchvision's references/classification/train.py: forward,
loss, backward, step; a progress call every `log_every` steps and a cancel check every step.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from alexnet import device as dev_

from .dist import Dist


class Cancelled(Exception):
    """The run was asked to stop; nothing of the unfinished epoch is written."""


def is_cancelled(cancel) -> bool:
    """`cancel` is a threading.Event, a callable returning True, or None."""
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate for optimizer step `step` of `total` (0-based)."""
    t = step / max(1, total)
    if schedule == "step":                        # /10 at 1/3 and 2/3 of the run
        return base * 0.1 ** min(2, int(3 * t))
    if schedule == "constant":                    # the seed-002 way (benchmarks/train_levers.py compares)
        return base
    if schedule != "onecycle":
        raise ValueError(f"unknown learning-rate schedule {schedule!r}")
    warm = 0.3                                    # one-cycle: base/25 -> base linearly, then cosine to ~0
    if t < warm:
        return base / 25 + (base - base / 25) * t / warm
    return base * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def make_optimizer(params, name: str, lr: float, weight_decay: float, momentum: float, device: torch.device):
    """SGD or AdamW over the trainable parameters; fused kernels (one pass over all of them, ~5x
    faster than the per-tensor loop on CPU, which matters when only the fc head trains)."""
    params = [p for p in params if p.requires_grad]
    fused = True if device.type in ("cpu", "cuda") else None
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    if name == "adamw":
        return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)
    raise ValueError(f"unknown optimizer {name!r}")


@dataclass
class Loop:
    """What every step needs besides the batch: device, schedule, reporting and stopping."""
    device: torch.device
    dist: Dist
    total_steps: int                   # the schedule's length; max_steps only stops early
    lr: float
    schedule: str
    label_smoothing: float
    log_every: int
    max_steps: int | None
    cancel: object = None
    report: Callable | None = None     # report(step=, loss=, acc=, img_per_s=)
    step: int = 0                      # optimizer steps taken over the whole run
    pause: Callable | None = None      # called before every step: the app lets visitors' requests go first


def train_one_epoch(net, optimizer, batches, n_batches: int, loop: Loop) -> dict:
    """Forward, loss, backward, step over `batches`; returns the epoch's loss, accuracy and speed."""
    net.train()
    device, dist = loop.device, loop.dist
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    seen, t0 = 0, time.perf_counter()
    for i, (x, y) in enumerate(batches):
        stop = dist.main and is_cancelled(loop.cancel)
        if dist.world > 1:                       # rank 0 decides; every rank stops at the same step
            stop = dist.all_sum(torch.tensor(float(stop), device=device)).item() > 0
        if stop:
            raise Cancelled
        if loop.pause is not None:
            loop.pause()
        for g in optimizer.param_groups:
            g["lr"] = lr_at(loop.step, loop.total_steps, loop.lr, loop.schedule)
        with dev_.autocast(device):
            out = net(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=loop.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loop.step += 1
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        last = i + 1 == n_batches or loop.step == loop.max_steps
        if loop.report is not None and (loop.step % loop.log_every == 0 or last):
            loop.report(step=loop.step, loss=loss_sum.item() / seen, acc=correct.item() / seen,
                        img_per_s=seen * dist.world / max(time.perf_counter() - t0, 1e-9))
        if loop.step == loop.max_steps:
            break
    if device.type == "cuda":
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    totals = dist.all_sum(torch.stack([loss_sum, correct, torch.tensor(float(seen), device=device)]))
    n = max(1.0, totals[2].item())
    return dict(train_loss=totals[0].item() / n, train_acc=totals[1].item() / n,
                img_per_s=n / max(dt, 1e-9), train_seconds=dt)


@torch.no_grad()
def validate(net, batches, device, dist: Dist) -> dict:
    """Loss and top-1 over the (sharded) validation set; None values when there is none."""
    net.eval()
    sums = torch.zeros(3, device=device)              # loss sum, correct, count
    for x, y in batches:
        with dev_.autocast(device):
            out = net(x).float()
        sums += torch.stack([F.cross_entropy(out, y, reduction="sum"), (out.argmax(1) == y).sum().float(),
                             torch.tensor(float(len(y)), device=device)])
    sums = dist.all_sum(sums)
    if sums[2].item() == 0:
        return dict(val_loss=None, val_acc=None)
    return dict(val_loss=sums[0].item() / sums[2].item(), val_acc=sums[1].item() / sums[2].item())
