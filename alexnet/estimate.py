"""How long will a training run take on this machine? Measured, not guessed: a few real steps.

`estimate(cfg, n_images)` times optimizer steps (the median of three after a warm-up step) of the run's own model
at each input size the run will use, and one validation forward pass, on random tensors of the
run's batch size; then adds them up over the run's epochs and sizes. The Retrain tab shows it
before Start ("about 6 min on this machine"). Timings are cached per (model, size, batch, device),
so changing the number of epochs re-estimates at once.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from alexnet import device as dev_
from alexnet.lru import LRU
from alexnet.model import build, default_input_size, use_generator

_STEP_CACHE: LRU[float] = LRU(64)        # (arch, width, classes, size, batch, device, train) -> seconds per batch


@dataclass
class Estimate:
    seconds: float                        # the whole run: training steps + validation after every epoch
    per_epoch: list[float]                # seconds for each epoch (its size's steps + validation)
    sizes: list[int]                      # training input size of each epoch
    measured_steps: int                   # real steps timed to get here (0 when all came from the cache)
    step_seconds: dict[int, float]        # measured seconds per training batch at each size (empty when fine-tuning)
    val_seconds: float                    # one validation pass over the held-out images, at the test size

    @property
    def text(self) -> str:
        """What the Retrain tab shows; a folder's first run also decodes its images once (not counted)."""
        return f"about {human(self.seconds)} on this machine"


def human(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5):.0f} s"
    if seconds < 5400:
        return f"{math.ceil(seconds / 60):.0f} min"
    return f"{seconds / 3600:.1f} h"


def _seconds_per_batch(cfg, classes: int, size: int, batch: int, device: torch.device, train: bool) -> tuple[float, int]:
    key = (cfg.arch, cfg.width, classes, size, batch, str(device), train)
    if key in _STEP_CACHE:
        return _STEP_CACHE.get(key), 0
    gen = torch.Generator().manual_seed(0)
    model = dev_.prepare(build(cfg.arch, classes, width=cfg.width, generator=gen), device)
    use_generator(model, torch.Generator(device=device).manual_seed(0))     # dropout masks: not the global RNG
    x = dev_.to_input(torch.randn((batch, 3, size, size), generator=gen), device)
    y = torch.randint(0, classes, (batch,), generator=gen).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def forward():
        with torch.inference_mode():
            model(x)
    model.train(train)
    return _STEP_CACHE.put(key, _median_seconds((lambda: _step(model, opt, x, y)) if train else forward, device)), 4


def _step(net, opt, x, y) -> None:
    """One optimizer step: forward, loss, backward, update."""
    loss = F.cross_entropy(net(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def _median_seconds(run, device: torch.device, n: int = 4) -> float:
    """Median seconds of `run()` over n calls, the first dropped (it pays for allocation, AdamW's state
    and kernel choice)."""
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def _head_seconds_per_batch(cfg, classes: int, batch: int, device: torch.device) -> tuple[float, int]:
    """One optimizer step of the fc layers after the frozen trunk (--freeze conv5: fc6-fc8, 58M weights;
    fc6/fc7: less), on random trunk outputs of batch size: what a features-path step costs."""
    from alexnet.train.surgery import split_frozen
    key = ("head", cfg.arch, cfg.width, classes, cfg.freeze, batch, str(device))
    if key in _STEP_CACHE:
        return _STEP_CACHE.get(key), 0
    gen = torch.Generator().manual_seed(0)
    model = build(cfg.arch, classes, width=cfg.width, generator=gen)
    trunk, head = split_frozen(model, cfg.freeze)
    head = dev_.prepare(head, device)
    use_generator(model, torch.Generator(device=device).manual_seed(0))
    with torch.inference_mode():       # the trunk's output width, from one small image
        width = trunk.eval()(torch.zeros((1, 3, default_input_size(cfg.arch), default_input_size(cfg.arch)))).shape[1]
    x = torch.rand((batch, width), generator=gen).to(device)
    y = torch.randint(0, classes, (batch,), generator=gen).to(device)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-4, fused=device.type in ("cpu", "cuda"))
    head.train()
    return _STEP_CACHE.put(key, _median_seconds(lambda: _step(head, opt, x, y), device)), 4


def estimate(cfg, n_images: int, classes: int = 5) -> Estimate:
    """Seconds for `cfg` (an alexnet.train.TrainConfig) on a folder of `n_images` images.

    From scratch: every epoch's steps at its own size (progressive resizing) plus a validation
    pass at the test size. Fine-tuning with cached features: one forward pass per training view
    (centre, and mirror if used) and validation image, then the fc head's steps (timed: next to
    nothing for fc8 alone, most of the run for fc6-fc8). Deeper fine-tuning: full steps, as from scratch.
    """
    from alexnet.train import epoch_sizes, resolve
    from alexnet.train.surgery import trains_on_features
    cfg = resolve(cfg)
    device = dev_.pick(cfg.device)
    n = min(n_images, cfg.limit) if cfg.limit else n_images
    n_val = round(n * cfg.val_fraction)
    n_train = n - n_val
    size = cfg.input_size or default_input_size(cfg.arch)
    sizes = epoch_sizes(cfg, size)
    steps = math.ceil(n_train / cfg.batch_size)
    val_batch = 64
    measured = 0
    t_val, m = _seconds_per_batch(cfg, classes, size, val_batch, device, train=False)
    measured += m
    val_s = t_val * math.ceil(n_val / val_batch)
    if trains_on_features(cfg, device):
        features_s = t_val * math.ceil((len(cfg.train_views) * n_train + n_val) / val_batch)
        t_head, m = _head_seconds_per_batch(cfg, classes, cfg.batch_size, device)
        measured += m
        per_epoch = [t_head * steps + (features_s if e == 0 else 0.0) for e in range(cfg.epochs)]
        return Estimate(sum(per_epoch), per_epoch, sizes, measured, {}, 0.0)
    per_size = {}
    for s in sorted(set(sizes)):
        per_size[s], m = _seconds_per_batch(cfg, classes, s, cfg.batch_size, device, train=True)
        measured += m
    per_epoch = [per_size[s] * steps + val_s for s in sizes]
    return Estimate(sum(per_epoch), per_epoch, sizes, measured, per_size, val_s)
