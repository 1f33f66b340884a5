"""Train AlexNet on an image folder: fine-tune from saved weights, or from scratch the paper's way.

    python -m alexnet.train --mode finetune --weights imagenet --epochs 5
    python -m alexnet.train --mode scratch --recipe paper --epochs 90 --data DIR
    torchrun --nproc_per_node 8 -m alexnet.train --mode scratch ...     (DDP, same script)

The app calls `train(TrainConfig(...), progress=..., cancel=...)`; the CLI only builds that
config from its flags. One loop serves both paths:
- full: uint8 images resident on the device -> batched crop/flip/PCA-lighting -> the model;
- features (CPU fine-tuning with frozen convs): the frozen prefix runs once per image
  (centre crop and its mirror, cached on disk), then only the fc head trains on those vectors.
Checkpoints (`<out>-last`, `<out>-best`) are written atomically at epoch ends only, so a
cancel or crash mid-epoch leaves the previous ones intact; `<out>-last.state.pt` lets
`--resume` continue at the next epoch with the same step count, data order and augmentation.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from alexnet import data as D
from alexnet.augment import progressive_sizes, random_resized_crop_flip, step_work
from alexnet.bvlc import BVLC_SOURCE, init_conv1_from_bvlc
from alexnet import device as dev_
from alexnet import weights as W
from alexnet.model import ARCHS, CONV_LAYERS, AlexNet, build, default_input_size, from_spec
from alexnet.shapes import layer_table

FREEZE_CHOICES = ("none",) + CONV_LAYERS + ("fc6", "fc7")
# Defaults per recipe; an explicit lr / weight_decay / label_smoothing in the config wins.
RECIPES = {
    # Paper section 5: SGD, batch 128, momentum 0.9, weight decay 5e-4, lr 0.01 divided by 10
    # when validation stopped improving (three times in ~90 epochs). Here: at each third of the run.
    "paper": dict(optimizer="sgd", lr=dict(scratch=0.01, finetune=0.01), weight_decay=5e-4,
                  label_smoothing=0.0, schedule="step"),
    # One-cycle (warm up 30%, cosine down) with AdamW and label smoothing 0.1.
    "modern": dict(optimizer="adamw", lr=dict(scratch=5e-4, finetune=1e-3), weight_decay=0.05,
                   label_smoothing=0.1, schedule="onecycle"),
    # modern + what makes from-scratch training fast on a CPU (benchmarks/train_scratch.py measures
    # each lever): random-resized crops, early epochs at low resolution (alexnet.augment), batch 32
    # (more steps per epoch on 3,000 images; a CPU is no faster per image at 64 or 128).
    "fast": dict(optimizer="adamw", lr=dict(scratch=5e-4, finetune=1e-3), weight_decay=0.05,
                 label_smoothing=0.1, schedule="onecycle", crop="rrc", progressive=True,
                 batch_size=dict(scratch=32, finetune=128), epochs=dict(scratch=16, finetune=10)),
}
DEFAULT_RECIPE = "fast"
INIT_CONV1 = ("none", "bvlc")
SCHEDULES = ("onecycle", "step", "constant")


class ConfigError(ValueError):
    """A training setting that cannot work; the message says which flag and what to do."""


NEEDS_WEIGHTS = ("fine-tuning needs starting weights: pass --weights imagenet (downloads torchvision's "
                 "233 MB ImageNet AlexNet once), --weights CKPT.safetensors or --weights FILE.pth; "
                 "or train from scratch with --mode scratch")


@dataclass
class TrainConfig:
    data: str | None = None            # image folder; None: $ALEXNET_DATA, ../shared flowers, or download
    arch: str = "paper"                # scratch: paper | torchvision (finetune: the weights decide)
    mode: str = "finetune"             # finetune | scratch
    weights: str | None = None         # finetune source for alexnet.weights.load; None = 'imagenet' if cached
    epochs: int | None = None          # None: the recipe's (fast: 16 scratch / 10 finetune; others 10)
    lr: float | None = None            # None: the recipe's default
    batch_size: int | None = None      # None: the recipe's (fast: 32 scratch, 128 fine-tuning; others 128, the paper's)
    recipe: str = DEFAULT_RECIPE       # fast | modern | paper  (see RECIPES)
    freeze: str = "conv5"              # finetune: layers up to and including this one stay fixed ('none' = none)
    input_size: int | None = None      # None: the source's / arch's (227 paper, 224 torchvision)
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "auto"
    out: str | None = None             # checkpoint stem; None: cache_dir()/checkpoints/<data>-<arch>-<mode>-<time>
    resume: bool = False
    limit: int | None = None           # use at most this many images (stratified), for quick runs and tests
    activation: str = "relu"           # scratch model options, passed to alexnet.model.build
    lrn: bool | None = None
    pool: tuple[int, int] = (3, 2)
    dropout: float = 0.5
    groups: int | None = None
    width: float = 1.0
    pca_aug: bool = True               # the paper's PCA colour augmentation (full path only)
    pca_std: float = 0.1
    compile: bool = False              # torch.compile the trained module
    weight_decay: float | None = None
    label_smoothing: float | None = None
    momentum: float = 0.9
    schedule: str | None = None        # onecycle | step | constant (None: the recipe's)
    progressive: bool | None = None    # scratch: early epochs at lower sizes (None: the recipe's)
    min_size: int = 131                # smallest progressive size (pool5 is then 3x3)
    init_conv1: str = "none"           # scratch: 'bvlc' starts conv1 from BVLC ImageNet's and keeps it fixed
    feature_cache: bool | None = None  # None: on for CPU fine-tuning with every conv frozen
    image_size: int = 256              # decode size: the paper's 256x256
    log_every: int = 10                # steps between progress reports
    max_steps: int | None = None       # stop after this many steps, keeping the full run's schedule (benchmarks);
                                       # the last checkpoint then covers a partial epoch
    extra: dict = field(default_factory=dict)


@dataclass
class TrainResult:
    checkpoint: Path | None            # the last epoch's checkpoint (.safetensors)
    best_checkpoint: Path | None       # the best validation accuracy's checkpoint
    history: list[dict]                # per epoch: train_loss, train_acc, val_loss, val_acc, img_per_s, seconds
    cancelled: bool
    meta: dict                         # the sidecar of `checkpoint` (or of the run so far)


def resolve(cfg: TrainConfig) -> TrainConfig:
    """A copy with the recipe's defaults filled in for every setting left at None."""
    from dataclasses import replace
    recipe = RECIPES.get(cfg.recipe, {})
    epochs = recipe.get("epochs", {}).get(cfg.mode, 10)
    batch = recipe.get("batch_size", {}).get(cfg.mode, 128)
    return replace(cfg, epochs=cfg.epochs if cfg.epochs is not None else epochs,
                   batch_size=cfg.batch_size if cfg.batch_size is not None else batch,
                   progressive=(cfg.progressive if cfg.progressive is not None
                                else bool(recipe.get("progressive")) and cfg.mode == "scratch"))


def epoch_sizes(cfg: TrainConfig, size: int) -> list[int]:
    """The training input size of every epoch (validation is always at `size`)."""
    if not cfg.progressive or cfg.mode != "scratch":
        return [size] * cfg.epochs
    return progressive_sizes(cfg.epochs, size, low=min(cfg.min_size, size))


def check_config(cfg: TrainConfig) -> None:
    """Refuse settings that cannot work before a minute is spent decoding."""
    cfg = resolve(cfg)
    if cfg.mode not in ("finetune", "scratch"):
        raise ConfigError(f"--mode must be 'finetune' or 'scratch', not {cfg.mode!r}")
    if cfg.recipe not in RECIPES:
        raise ConfigError(f"--recipe must be one of {', '.join(RECIPES)}, not {cfg.recipe!r}")
    if cfg.arch not in ARCHS:
        raise ConfigError(f"--arch must be one of {', '.join(ARCHS)}, not {cfg.arch!r}")
    if cfg.freeze not in FREEZE_CHOICES:
        raise ConfigError(f"--freeze must be one of {', '.join(FREEZE_CHOICES)}, not {cfg.freeze!r}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise ConfigError("--epochs and --batch-size must be at least 1")
    if not 0 <= cfg.val_fraction < 1:
        raise ConfigError(f"--val-fraction must be in [0, 1), not {cfg.val_fraction}")
    if cfg.input_size is not None and cfg.input_size > cfg.image_size:
        raise ConfigError(f"--input-size {cfg.input_size} is larger than the decoded images ({cfg.image_size})")
    if cfg.limit is not None and cfg.limit < 2:
        raise ConfigError("--limit must be at least 2 images")
    if cfg.schedule not in (None,) + SCHEDULES:
        raise ConfigError(f"--schedule must be one of {', '.join(SCHEDULES)}, not {cfg.schedule!r}")
    if cfg.init_conv1 not in INIT_CONV1:
        raise ConfigError(f"--init-conv1 must be one of {', '.join(INIT_CONV1)}, not {cfg.init_conv1!r}")
    if cfg.init_conv1 != "none" and (cfg.mode != "scratch" or cfg.arch != "paper" or cfg.width != 1.0):
        raise ConfigError("--init-conv1 bvlc needs --mode scratch --arch paper at width 1: BVLC's conv1 has 96 filters")
    if cfg.progressive and cfg.min_size < 67:
        raise ConfigError(f"--min-size {cfg.min_size}: below 67 px pool5 would be empty")
    if cfg.resume and not cfg.out:
        raise ConfigError("--resume needs --out: the checkpoint stem of the run to continue")
    try:
        dev_.pick(cfg.device)
    except (RuntimeError, ValueError) as e:   # e.g. --device cuda on a machine without one
        raise ConfigError(str(e)) from None
    if cfg.mode == "finetune" and cfg.weights is None and not W.imagenet_weights_path().exists():
        raise ConfigError(NEEDS_WEIGHTS)
    if cfg.weights not in (None, "imagenet") and not Path(cfg.weights).expanduser().exists():
        raise ConfigError(f"--weights {cfg.weights}: no such file")


# ---------------------------------------------------------------- distributed (torchrun) helpers

@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0
    owns_group: bool = False           # we initialised the process group, so we destroy it

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1 or torch.distributed.is_initialized():
            torch.distributed.barrier()

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if torch.distributed.is_initialized():
            torch.distributed.all_reduce(t)
        return t


def _setup_dist(device: str) -> Dist:
    """torchrun sets RANK / WORLD_SIZE / LOCAL_RANK; without them this is a single process."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        return Dist()
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    owns = False
    if not torch.distributed.is_initialized():
        cuda = device in ("auto", "cuda") and torch.cuda.is_available()
        torch.distributed.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
        owns = True
    return Dist(rank, world, local, owns)


def _pick_device(cfg: TrainConfig, dist: Dist) -> torch.device:
    device = dev_.pick(cfg.device)
    if device.type == "cuda" and torch.distributed.is_initialized():   # one GPU per torchrun process
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    return device


def _is_cancelled(cancel) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


# ---------------------------------------------------------------- data

def _rank0_first(dist: Dist, fn):
    """Rank 0 builds (and caches) first; the others then find its cache instead of redoing the work."""
    if not dist.main:
        dist.barrier()
    out = fn()
    if dist.main:
        dist.barrier()
    return out


# ---------------------------------------------------------------- model

def _new_head(model: AlexNet) -> None:
    """A fresh fc8, initialised as the paper did: N(0, 0.01) weights, zero biases."""
    fc8 = model.param_layer("fc8")
    nn.init.normal_(fc8.weight, 0.0, 0.01)
    nn.init.zeros_(fc8.bias)


def build_model(cfg: TrainConfig, classes: list[str], images: torch.Tensor | None = None,
                train_idx: torch.Tensor | None = None) -> tuple[AlexNet, dict]:
    """The model to train and what its sidecar needs: mean, std, input size, source."""
    k = len(classes)
    if cfg.mode == "scratch":
        model = build(cfg.arch, k, activation=cfg.activation, lrn=cfg.lrn, pool=tuple(cfg.pool),
                      dropout=cfg.dropout, groups=cfg.groups, width=cfg.width)
        if cfg.arch == "torchvision":
            mean, std = W.IMAGENET_MEAN, W.IMAGENET_STD
        else:  # the paper subtracted the training set's mean; its std keeps default inits well scaled
            stats = D.rgb_stats(images, train_idx)
            mean, std = [round(v, 4) for v in stats["mean"].tolist()], [round(v, 4) for v in stats["std"].tolist()]
        size = cfg.input_size or default_input_size(cfg.arch)
        _check_size(model, size)
        if cfg.init_conv1 == "bvlc":
            init_conv1_from_bvlc(model, mean, std)
            return model, dict(mean=mean, std=std, input_size=size, source=BVLC_SOURCE)
        return model, dict(mean=mean, std=std, input_size=size, source="scratch")
    source = cfg.weights
    if source is None:
        if not W.imagenet_weights_path().exists():
            raise ConfigError(NEEDS_WEIGHTS)
        source = "imagenet"
    src, src_meta = W.load(source)
    spec = dict(src_meta["spec"], num_classes=k)
    model = from_spec(spec)
    fc8 = model.param_key("fc8") + "."
    W.load_state_dict_checked(model, {n: t for n, t in src.state_dict().items() if not n.startswith(fc8)}, strict=False)
    _new_head(model)
    size = cfg.input_size or src_meta.get("input_size") or default_input_size(spec["arch"])
    _check_size(model, size)
    return model, dict(mean=src_meta["mean"], std=src_meta["std"], input_size=size, source=str(source))


def _check_size(model: AlexNet, size: int) -> None:
    """alexnet.shapes says, in a sentence, which layer an input that small would empty."""
    spec = model.spec.to_dict()
    try:
        layer_table(spec.pop("arch"), size, **{k: (tuple(v) if k == "pool" else v) for k, v in spec.items()})
    except ValueError as e:
        raise ConfigError(f"--input-size {size}: {e}") from None


def split_frozen(model: AlexNet, freeze: str) -> tuple[nn.Module, nn.Module]:
    """(frozen trunk, trainable head) for a frozen prefix ending at conv5, fc6 or fc7.

    The trunk ends after the layer's ReLU (and pool5 + avgpool + flatten for conv5), so its
    output is exactly what the head's first module receives in the full model.
    """
    cut = 0 if freeze in CONV_LAYERS else [m is model.tap(freeze) for m in model.classifier].index(True) + 1
    trunk = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *model.classifier[:cut])
    head = nn.Sequential(*model.classifier[cut:])
    return trunk, head


def _freeze(model: AlexNet, freeze: str) -> list[str]:
    """Turn off gradients for every layer up to and including `freeze`; returns the frozen layer names."""
    if freeze == "none":
        return []
    order = list(CONV_LAYERS) + ["fc6", "fc7"]
    frozen = order[:order.index(freeze) + 1]
    for name in frozen:
        for p in model.param_layer(name).parameters():
            p.requires_grad_(False)
    return frozen


# ---------------------------------------------------------------- batches

def image_batches(images, labels, order, size, batch_size, mean, std, train, gen=None, pca=None, pca_std=0.1,
                  crop="fixed"):
    """Yield (x, y) for `order`; train batches get crop + flip (+ PCA lighting), val the centre crop.

    crop='fixed': the paper's random size x size window of the 256 image; 'rrc': a random area
    and aspect ratio resampled to size x size (alexnet.augment).
    """
    mf = dev_.memory_format(images.device)
    for i in range(0, len(order), batch_size):
        b = order[i:i + batch_size]
        u = images[b]                                              # (B, 3, 256, 256) uint8
        if train and crop == "rrc":
            x = random_resized_crop_flip(u, size, gen)             # (B, 3, size, size) in 0-1
            if pca is not None:
                x = D.pca_lighting(x, pca["eigvals"], pca["eigvecs"], pca_std, gen)
        elif train:
            x = D.random_crop_flip(u, size, gen).float().div_(255)  # (B, 3, size, size) in 0-1
            if pca is not None:
                x = D.pca_lighting(x, pca["eigvals"], pca["eigvecs"], pca_std, gen)
        else:
            x = D.center_crop(u, size)
        yield D.normalize(x, mean, std).contiguous(memory_format=mf), labels[b]


def feature_batches(feats, labels, order, batch_size, gen=None):
    """Yield (features, y); train features (N, V, D) pick one random view per image, val ones are (N, D)."""
    for i in range(0, len(order), batch_size):
        b = order[i:i + batch_size]
        f = feats[b]
        if f.dim() == 3:                                           # (B, V, D) -> (B, D)
            view = torch.randint(0, f.shape[1], (len(b),), generator=gen, device=f.device)
            f = f[torch.arange(len(b), device=f.device), view]
        yield f, labels[b]


@torch.no_grad()   # not inference_mode: the head trains on these tensors, and autograd must be able to save them
def compute_features(trunk, images, idx, size, mean, std, device, batch_size=128, flips=True, progress=None):
    """Run the frozen trunk once per image: (N, 2, D) centre crop + its mirror, or (N, D) centre only."""
    trunk.eval()
    out = []
    for i in range(0, len(idx), batch_size):
        x = dev_.to_input(D.normalize(D.center_crop(images[idx[i:i + batch_size]], size), mean, std), device)
        with dev_.autocast(device):
            f = trunk(x).float()                                   # (B, D)
            if flips:
                f = torch.stack([f, trunk(x.flip(-1)).float()], 1)  # (B, 2, D)
        out.append(f)
        if progress is not None:
            progress(min(i + batch_size, len(idx)), len(idx))
    return torch.cat(out)


def _fingerprint(module: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in module.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def cached_features(trunk, decoded, train_idx, val_idx, size, mean, std, device, progress=None):
    """Trunk features for train (N, 2, D) and val (M, D), cached under cache_dir()/features/; and
    whether they came from that cache.

    Keyed by the decoded data, the trunk's weights, crop size, normalisation and the indices,
    so a second fine-tuning run with other head settings starts training at once.
    """
    from safetensors.torch import load_file, save_file
    key = hashlib.sha256(json.dumps([decoded.key, _fingerprint(trunk), len(trunk), size, list(mean), list(std),
                                     train_idx.tolist(), val_idx.tolist()]).encode()).hexdigest()[:24]
    path = W.cache_dir() / "features" / f"{key}.safetensors"
    if path.exists():
        t = load_file(str(path))
        return t["train"], t["val"], True
    images = decoded.images
    total = len(train_idx) + len(val_idx)
    step = (lambda done, _n, off=0: progress(off + done, total)) if progress else None
    tr = compute_features(trunk, images, train_idx, size, mean, std, device, flips=True, progress=step)
    step = (lambda done, _n: progress(len(train_idx) + done, total)) if progress else None
    va = compute_features(trunk, images, val_idx, size, mean, std, device, flips=False, progress=step)
    va = va if len(val_idx) else torch.zeros((0, tr.shape[-1]), device=tr.device)
    W.atomic_write_bytes(path, lambda tmp: save_file({"train": tr.cpu().contiguous(), "val": va.cpu().contiguous()}, tmp))
    return tr, va, False


# ---------------------------------------------------------------- schedule and optimizer

def lr_at(step: int, total: int, base: float, schedule: str) -> float:
    """Learning rate for optimizer step `step` of `total` (0-based)."""
    t = step / max(1, total)
    if schedule == "step":                        # /10 at 1/3 and 2/3 of the run
        return base * 0.1 ** min(2, int(3 * t))
    if schedule == "constant":                    # the seed-002 way (benchmarks/train_levers.py compares)
        return base
    warm = 0.3                                    # one-cycle: base/25 -> base linearly, then cosine to ~0
    if t < warm:
        return base / 25 + (base - base / 25) * t / warm
    return base * 0.5 * (1 + math.cos(math.pi * (t - warm) / (1 - warm)))


def make_optimizer(params, recipe: dict, lr: float, weight_decay: float, momentum: float, device: torch.device):
    """SGD or AdamW over the trainable parameters; fused kernels (one pass over all of them, ~5x
    faster than the per-tensor loop on CPU, which matters when only the fc head trains)."""
    params = [p for p in params if p.requires_grad]
    fused = True if device.type in ("cpu", "cuda") else None
    if recipe["optimizer"] == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay, fused=fused)
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused)


# ---------------------------------------------------------------- one epoch, validation

class _Cancelled(Exception):
    pass


def train_one_epoch(net, optimizer, batches, n_batches, state, ctx):
    """Plain loop: forward, loss, backward, step; progress every `log_every` steps; cancel every step."""
    net.train()
    device, dist = ctx["device"], ctx["dist"]
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device)
    seen, t0 = 0, time.perf_counter()
    for i, (x, y) in enumerate(batches):
        stop = dist.main and _is_cancelled(ctx["cancel"])
        if dist.world > 1:                       # rank 0 decides; every rank stops at the same step
            stop = dist.all_sum(torch.tensor(float(stop), device=device)).item() > 0
        if stop:
            raise _Cancelled
        lr = lr_at(state["step"], ctx["total_steps"], ctx["lr"], ctx["schedule"])
        for g in optimizer.param_groups:
            g["lr"] = lr
        with dev_.autocast(device):
            out = net(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=ctx["label_smoothing"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state["step"] += 1
        loss_sum += loss.detach() * len(y)
        correct += (out.argmax(1) == y).sum()
        seen += len(y)
        last = i + 1 == n_batches or state["step"] == ctx["max_steps"]
        if ctx["report"] is not None and (state["step"] % ctx["log_every"] == 0 or last):
            dt = time.perf_counter() - t0
            ctx["report"](phase="train", step=state["step"], loss=loss_sum.item() / seen, acc=correct.item() / seen,
                          img_per_s=seen * dist.world / max(dt, 1e-9))
        if state["step"] == ctx["max_steps"]:
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


# ---------------------------------------------------------------- checkpoints

def _stems(cfg: TrainConfig, root: Path) -> tuple[Path, Path]:
    if cfg.out:
        stem = Path(cfg.out).expanduser()
        stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    else:
        when = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        stem = W.cache_dir() / "checkpoints" / f"{root.name}-{cfg.arch if cfg.mode == 'scratch' else 'ft'}-{cfg.mode}-{when}"
    return Path(f"{stem}-last"), Path(f"{stem}-best")


def _file(stem: Path, ext: str) -> Path:
    """stem + ext without Path.with_suffix, which would eat a dotted name such as 'run-0.5-last'."""
    return stem.with_name(stem.name + ext)


def _state_path(last: Path) -> Path:
    return _file(last, ".state.pt")


def _save_state(path: Path, state: dict) -> None:
    W.atomic_write_bytes(path, lambda tmp: torch.save(state, tmp))


# ---------------------------------------------------------------- the entry point

def train(config: TrainConfig, progress=None, cancel=None) -> TrainResult:
    """Train as `config` says. `progress(dict)` gets epoch, epochs, step, steps, loss, acc, val_acc,
    img_per_s, eta_s, phase ('decode' | 'features' | 'train' | 'val' | 'done'; in 'decode' and
    'features', step/steps count images). `cancel` is a threading.Event or a callable returning True;
    it is checked every step, and a cancelled run writes nothing.
    """
    cfg = resolve(config)
    check_config(cfg)
    dist = _setup_dist(cfg.device)
    try:
        return _train(cfg, progress if dist.main else None, cancel, dist)
    except _Cancelled:   # while decoding or extracting features: nothing new was written
        if progress is not None:
            progress(dict(phase="done", epoch=0, epochs=cfg.epochs, step=0, steps=0, loss=None, acc=None,
                          val_acc=None, img_per_s=None, eta_s=0.0))
        files = [_file(stem, ".safetensors") for stem in _stems(cfg, Path("data"))] if cfg.out else [None, None]
        last, best = (f if f is not None and f.exists() else None for f in files)
        meta = W.read_meta(last) if last else {}
        return TrainResult(last, best, list(meta.get("history", [])), True, meta)
    finally:
        if dist.owns_group:
            torch.distributed.destroy_process_group()


def _train(cfg: TrainConfig, progress, cancel, dist: Dist) -> TrainResult:
    device = _pick_device(cfg, dist)
    recipe = RECIPES[cfg.recipe]
    status = dict(epoch=0, epochs=cfg.epochs, step=0, steps=0, loss=None, acc=None, val_acc=None,
                  img_per_s=None, eta_s=None, phase="decode", size=None)

    def report(**kw):
        status.update(kw)
        if progress is not None:
            progress(dict(status))

    def report_and_check(**kw):
        """Decoding and feature extraction can take minutes: a cancel stops them too (single process)."""
        report(**kw)
        if dist.world == 1 and _is_cancelled(cancel):
            raise _Cancelled

    root = D.find_data_dir(cfg.data)
    last_stem, best_stem = _stems(cfg, root)
    if not cfg.resume and dist.main and _file(last_stem, ".safetensors").exists():
        raise ConfigError(f"{last_stem}.safetensors already exists: pass --resume to continue that run, "
                          f"or choose another --out")

    # Data: decoded once (rank 0 first, the others read its cache), limited, split.
    decoded = _rank0_first(dist, lambda: D.decode_folder(
        root, cfg.image_size, progress=lambda done, total: report_and_check(step=done, steps=total)))
    if dist.main:
        for path, why in decoded.skipped:
            print(f"skipped {path}: {why}", file=sys.stderr)
    keep = D.stratified_subset(decoded.labels, cfg.limit, cfg.seed)
    tr, va = D.stratified_split(decoded.labels[keep], cfg.val_fraction, cfg.seed)
    train_idx, val_idx = keep[tr], keep[va]
    classes = decoded.classes

    # Model, frozen layers, normalisation.
    torch.manual_seed(cfg.seed)
    model, info = build_model(cfg, classes, decoded.images, train_idx)
    size, mean, std = int(info["input_size"]), info["mean"], info["std"]
    frozen = _freeze(model, cfg.freeze) if cfg.mode == "finetune" else []
    if cfg.init_conv1 == "bvlc":                       # BVLC's filters stay as released: only the rest learns
        frozen = _freeze(model, "conv1")
    sizes = epoch_sizes(cfg, size)
    use_features = (cfg.mode == "finetune" and cfg.freeze not in ("none",) + CONV_LAYERS[:-1]
                    and (cfg.feature_cache if cfg.feature_cache is not None else device.type == "cpu"))
    model = dev_.prepare(model, device)

    # What one epoch iterates over: images on the device, or frozen-trunk features.
    labels = decoded.labels.to(device)
    if use_features:
        trunk, net = split_frozen(model, cfg.freeze)
        t0 = time.perf_counter()
        feats_tr, feats_va, features_cached = _rank0_first(dist, lambda: cached_features(
            trunk, decoded, train_idx, val_idx, size, mean, std, device,
            progress=lambda done, total: report_and_check(phase="features", step=done, steps=total)))
        features_seconds = time.perf_counter() - t0
        feats_tr, feats_va = feats_tr.to(device), feats_va.to(device)
        y_tr, y_va = labels[train_idx.to(device)], labels[val_idx.to(device)]
        pos_tr = torch.arange(len(train_idx), device=device)
        pos_va = torch.arange(len(val_idx), device=device)
        pca = None
    else:
        net, features_seconds, features_cached = model, 0.0, False
        images = decoded.images.to(device)                 # 720 MB for the flowers: fine in RAM or on a GPU
        stats = D.rgb_stats(decoded.images, train_idx) if cfg.pca_aug else None
        pca = {k: v.to(device) for k, v in stats.items()} if stats else None
        tr_dev, va_dev = train_idx.to(device), val_idx.to(device)

    per_rank = len(train_idx) // dist.world
    steps_per_epoch = max(1, math.ceil(per_rank / cfg.batch_size))
    crop = recipe.get("crop", "fixed")
    total_steps = steps_per_epoch * cfg.epochs          # the schedule's length; max_steps only stops early
    base_lr = cfg.lr if cfg.lr is not None else recipe["lr"][cfg.mode]
    wd = cfg.weight_decay if cfg.weight_decay is not None else recipe["weight_decay"]
    optimizer = make_optimizer(net.parameters(), recipe, base_lr, wd, cfg.momentum, device)
    trained = net
    if dist.world > 1 or torch.distributed.is_initialized():
        trained = nn.parallel.DistributedDataParallel(net, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        trained = torch.compile(trained)

    # Resume: weights, optimizer, step count and history from the last epoch's files.
    state = dict(step=0, epoch=0, best=-math.inf)
    history: list[dict] = []
    meta: dict = {}
    last_path = best_path = None
    if cfg.resume:
        state_file = _state_path(last_stem)
        if not _file(last_stem, ".safetensors").exists() or not state_file.exists():
            raise ConfigError(f"--resume: no checkpoint {last_stem}.safetensors with its .state.pt to continue from")
        saved, meta = W.load_checkpoint(_file(last_stem, ".safetensors"))
        if meta["classes"] != classes:
            raise ConfigError(f"--resume: {last_stem.name} was trained on classes {meta['classes']}, "
                              f"this data has {classes}")
        model.load_state_dict(saved.state_dict())
        st = torch.load(state_file, map_location=device, weights_only=True)
        if st["step"] != meta["train_state"]["step"]:
            raise ConfigError(f"--resume: {state_file.name} (step {st['step']}) does not match "
                              f"{last_stem.name} (step {meta['train_state']['step']}); start a new run")
        optimizer.load_state_dict(st["optimizer"])
        state.update(step=st["step"], epoch=st["epoch"], best=st["best"])
        history = list(meta.get("history", []))
        last_path = _file(last_stem, ".safetensors")
        best_path = _file(best_stem, ".safetensors") if _file(best_stem, ".safetensors").exists() else None

    ctx = dict(device=device, dist=dist, cancel=cancel, total_steps=total_steps, lr=base_lr, schedule=cfg.schedule or recipe["schedule"],
               label_smoothing=(cfg.label_smoothing if cfg.label_smoothing is not None else recipe["label_smoothing"]),
               log_every=max(1, cfg.log_every), max_steps=cfg.max_steps, report=None)
    run_start, step_start = time.perf_counter(), state["step"]

    # ETA in units of work, not steps: a step at 131 px costs about a third of one at 227.
    step_cost = [step_work(sizes[min(st // steps_per_epoch, len(sizes) - 1)], size) for st in range(total_steps)]
    work_before = [0.0]
    for c in step_cost:
        work_before.append(work_before[-1] + c)

    def train_report(**kw):
        done = work_before[kw["step"]] - work_before[step_start]
        eta = (time.perf_counter() - run_start) / max(done, 1e-9) * (work_before[-1] - work_before[kw["step"]])
        report(eta_s=eta, **kw)

    ctx["report"] = train_report
    cancelled = False
    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.max_steps is not None and state["step"] >= cfg.max_steps:
            break
        # Order, crops, flips and dropout depend only on (seed, epoch): a resumed run repeats them exactly.
        gen = torch.Generator(device=device).manual_seed(cfg.seed * 1_000_003 + epoch)
        torch.manual_seed(cfg.seed * 1_000_003 + epoch + 7919 * dist.rank)
        perm = torch.randperm(len(train_idx), generator=gen, device=device)[:per_rank * dist.world]
        mine = perm[dist.rank::dist.world]
        report(epoch=epoch + 1, steps=total_steps, step=state["step"], phase="train", size=sizes[epoch])
        if use_features:
            batches = feature_batches(feats_tr, y_tr, pos_tr[mine], cfg.batch_size, gen)
            val_batches = feature_batches(feats_va, y_va, pos_va[dist.rank::dist.world], 512)
        else:
            batches = image_batches(images, labels, tr_dev[mine], sizes[epoch], cfg.batch_size, mean, std, True, gen,
                                    pca, cfg.pca_std, crop=crop)
            val_batches = image_batches(images, labels, va_dev[dist.rank::dist.world], size, 256, mean, std, False)
        t0 = time.perf_counter()
        try:
            row = train_one_epoch(trained, optimizer, batches, steps_per_epoch, state, ctx)
        except _Cancelled:
            cancelled = True
            break
        report(phase="val")
        row.update(validate(net, val_batches, device, dist))
        row.update(epoch=epoch + 1, step=state["step"], lr=optimizer.param_groups[0]["lr"],
                   seconds=time.perf_counter() - t0, size=sizes[epoch], wall_s=time.perf_counter() - run_start)
        history.append(row)
        state["epoch"] = epoch + 1
        score = row["val_acc"] if row["val_acc"] is not None else -row["train_loss"]
        is_best = score > state["best"]
        state["best"] = max(state["best"], score)
        if dist.main:
            meta = W.make_meta(
                model, classes, mean, std, source=info["source"], input_size=size,
                metrics=dict(val_top1=row["val_acc"], val_loss=row["val_loss"], train_top1=row["train_acc"],
                             train_loss=row["train_loss"], epoch=epoch + 1),
                split_seed=cfg.seed, split=dict(val_fraction=cfg.val_fraction, limit=cfg.limit, data_key=decoded.key,
                                                n_train=len(train_idx), n_val=len(val_idx),
                                                val=val_idx.tolist()),   # indices into the decoded folder
                data=str(root), skipped=decoded.skipped, history=history, config=_config_dict(cfg), frozen=frozen,
                path="features" if use_features else "full", features_seconds=features_seconds,
                features_cached=features_cached,
                train_state=dict(step=state["step"], epoch=epoch + 1, epochs=cfg.epochs))
            _save_state(_state_path(last_stem), dict(step=state["step"], epoch=epoch + 1, best=state["best"],
                                                     optimizer=optimizer.state_dict()))
            last_path = W.save_checkpoint(_file(last_stem, ".safetensors"), model, dict(meta, kind="last"))
            if is_best:
                best_path = W.save_checkpoint(_file(best_stem, ".safetensors"), model, dict(meta, kind="best"))
        dist.barrier()
        report(val_acc=row["val_acc"], img_per_s=row["img_per_s"], loss=row["train_loss"], acc=row["train_acc"])
    report(phase="done", eta_s=0.0)
    return TrainResult(last_path, best_path, history, cancelled, meta)


def _config_dict(cfg: TrainConfig) -> dict:
    d = asdict(cfg)
    d["pool"] = list(d["pool"])
    return d


# ---------------------------------------------------------------- CLI

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m alexnet.train",
        description="Train AlexNet on an image folder (one sub-folder per class): fine-tune from weights, "
                    "or from scratch with the paper's recipe. Checkpoints go to <out>-last / <out>-best "
                    ".safetensors + .json; the app lists those in its cache's checkpoints/ folder.",
        epilog="Data: --data DIR, else $ALEXNET_DATA, else ../shared/data/flower_photos_256, else the flowers "
               "are downloaded (218 MB) into the cache. Ctrl-C stops after the current step and keeps the last "
               "epoch's checkpoint; --resume --out STEM continues. Multi-GPU: torchrun --nproc_per_node N -m "
               "alexnet.train ...")
    c = TrainConfig()
    p.add_argument("--data", default=None, help="image folder, one sub-folder per class")
    p.add_argument("--mode", default=c.mode, choices=("finetune", "scratch"), help="(default: %(default)s)")
    p.add_argument("--weights", default=None,
                   help="finetune source: 'imagenet', a .safetensors checkpoint, a torchvision .pth, Caffe "
                        ".npy/.npz (default: imagenet if torchvision has already downloaded it)")
    p.add_argument("--arch", default=c.arch, choices=ARCHS, help="scratch architecture (default: %(default)s)")
    p.add_argument("--recipe", default=c.recipe, choices=tuple(RECIPES),
                   help="fast: modern + random-resized crops, early epochs at low resolution, batch 32 (learns "
                        "fastest on a CPU); modern: AdamW, one-cycle, label smoothing 0.1; paper: SGD momentum 0.9, "
                        "weight decay 5e-4, lr/10 at each third of the run (needs ~90 epochs) (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help="(default: the recipe's; fast: 16 from scratch, 10 fine-tuning; others 10)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="(default: the recipe's; fast 32 from scratch, 128 fine-tuning; others 128)")
    p.add_argument("--freeze", default=c.freeze, choices=FREEZE_CHOICES,
                   help="finetune: keep every layer up to and including this one fixed (default: %(default)s)")
    p.add_argument("--input-size", type=int, default=None, help="crop size (default: 227 paper, 224 torchvision)")
    p.add_argument("--val-fraction", type=float, default=c.val_fraction, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=c.seed, help="split, init, order and augmentation (default: %(default)s)")
    p.add_argument("--device", default=c.device, help="auto, cpu, cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--out", default=None, help="checkpoint stem (default: <cache>/checkpoints/<data>-<arch>-<mode>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run saved at --out")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images, drawn per class")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    g = p.add_argument_group("scratch model options (alexnet.model.build)")
    g.add_argument("--width", type=float, default=c.width,
                   help="channel multiplier; 0.5 gives 48-128-192-192-128, fc 2048 (default: %(default)s)")
    g.add_argument("--activation", default=c.activation, choices=("relu", "tanh"), help="(default: %(default)s)")
    g.add_argument("--lrn", default=None, action=argparse.BooleanOptionalAction,
                   help="local response normalisation (default: the arch's)")
    g.add_argument("--pool", default="3,2", help="max-pool kernel,stride: 3,2 overlapping as in the paper, or 2,2")
    g.add_argument("--dropout", type=float, default=c.dropout, help="(default: %(default)s)")
    g.add_argument("--groups", type=int, default=None, choices=(1, 2), help="conv2/4/5 groups (default: the arch's)")
    g.add_argument("--init-conv1", default=c.init_conv1, choices=INIT_CONV1,
                   help="bvlc: start conv1 from BVLC's ImageNet AlexNet (assets/) and keep it fixed; the model is "
                        "then labelled 'conv1 from BVLC ImageNet', not fully from scratch (default: %(default)s)")
    g = p.add_argument_group("speed and augmentation")
    g.add_argument("--no-pca", dest="pca_aug", action="store_false", help="turn off the PCA colour augmentation")
    g.add_argument("--compile", action="store_true", help="torch.compile the trained module")
    g.add_argument("--progressive", default=None, action=argparse.BooleanOptionalAction,
                   help="scratch: early epochs at lower input sizes, the last at the test size (default: the recipe's)")
    g.add_argument("--min-size", type=int, default=c.min_size, help="smallest progressive size (default: %(default)s)")
    g.add_argument("--schedule", default=None, choices=SCHEDULES, help="learning-rate schedule (default: the recipe's)")
    g.add_argument("--label-smoothing", type=float, default=None, help="(default: the recipe's)")
    g.add_argument("--feature-cache", default=None, action=argparse.BooleanOptionalAction,
                   help="finetune with every conv frozen: train the fc head on cached conv features "
                        "(default: on for CPU)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    try:
        pool = tuple(int(v) for v in args.pool.split(","))
        assert len(pool) == 2
    except (ValueError, AssertionError):
        raise ConfigError(f"--pool must be kernel,stride such as 3,2; not {args.pool!r}") from None
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names and k != "pool"}, pool=pool)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from tqdm import tqdm
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: (stop.set(), print("\nstopping after this step...", file=sys.stderr)))
    bars: dict[str, tqdm] = {}

    def progress(s):
        phase = s["phase"]
        if phase in ("decode", "features", "train") and s["steps"]:
            bar = bars.get(phase)
            if bar is None:
                for b in bars.values():
                    b.close()
                bar = bars[phase] = tqdm(total=s["steps"], desc=phase, unit="img" if phase != "train" else "step",
                                         dynamic_ncols=True)
            bar.n = s["step"]
            if phase == "train" and s["loss"] is not None:
                bar.set_postfix(epoch=f"{s['epoch']}/{s['epochs']}", loss=f"{s['loss']:.3f}", acc=f"{s['acc']:.3f}",
                                val=f"{s['val_acc']:.3f}" if s["val_acc"] is not None else "-",
                                img_s=f"{s['img_per_s']:.0f}" if s["img_per_s"] else "-", refresh=False)
            bar.refresh()
        if phase == "done":
            for b in bars.values():
                b.close()

    try:
        result = train(config_from_args(args), progress=progress, cancel=stop)
    except (ConfigError, D.DataError, W.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for row in result.history:
        val = f"{row['val_acc']:.3f}" if row["val_acc"] is not None else "-"
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f} | "
              f"val acc {val} | {row['img_per_s']:.0f} img/s, {row['seconds']:.0f} s")
    if result.cancelled:
        print("cancelled: nothing written for the unfinished epoch", file=sys.stderr)
    print(f"last checkpoint: {result.checkpoint}\nbest checkpoint: {result.best_checkpoint}")
    return 130 if result.cancelled else 0


if __name__ == "__main__":
    sys.exit(main())
