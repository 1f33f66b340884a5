"""The paper's claims beside this project's numbers: `reports/paper.md`, `paper.json` and three PNGs.

    python -m alexnet.paper --out reports                                   # full size (a GPU)
    python -m alexnet.paper --size 80 --width 0.25 --epochs 8 --limit 1000 --batch-size 32 \\
        --seeds 3 --target-error 0.6 --small-epochs 20 --device cpu         # ~15 min on 2 shared CPU cores
    python -m alexnet.paper --quick --data DIR                              # tiny everything (tests)
    python -m alexnet.paper --render reports/paper.json                     # redo text + plots, no training

reports/example/ holds the CPU run's output.

Four sections, each timed, each adding rows to one claim table
(claim | paper | this project | how obtained | time):
1. `arithmetic`  shapes, parameters, neurons and multiply-adds, read from `alexnet.shapes`.
2. `conv1`       colour scores per conv2 group: the BVLC ImageNet conv1 and this project's own
                 two-group models trained on the flowers, before and after training, over seeds.
3. `ablations`   one option changed at a time against the paper's choices (ReLU, LRN, 3/2 pooling,
                 dropout, PCA lighting, two groups), >= 2 seeds each, mean +/- sd; ReLU vs tanh
                 also on a 4-layer CIFAR-style net at 32 px; 10-crop vs centre-crop testing.
4. `neighbours`  5 queries per class, 6 nearest training images in fc7 space and in pixel space.

Layering: everything here uses `alexnet.*` only. The colour score lives in `viz.filters`, so
the library entry point `make_report` takes it as arguments (`colour_score`, `split_auc`);
`main()` is this CLI's composition root and the one place that imports `viz` (lazily, and only
when the conv1 section runs). Plots are drawn with matplotlib's object API directly.

Honesty rules: every difference is reported with its seeds' spread and a verdict from
`verdict()` - "agrees", "disagrees at this scale" or "inconclusive at this scale" - and a run
whose baseline barely beats chance says so instead of claiming anything.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import io
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from alexnet import data as D
from alexnet import device as dev_
from alexnet import weights as W
from alexnet.evaluate import evaluate
from alexnet.model import build
from alexnet.shapes import conv1_note, layer_table
from alexnet.train import RECIPES, TrainConfig, train

SECTIONS = ("arithmetic", "conv1", "ablations", "neighbours")
BVLC_CONV1 = W.ASSETS / "bvlc_alexnet_conv1.npz"
BVLC_PARAMS = 60_965_224          # the two-tower 1000-class paper model, biases included
TORCHVISION_PARAMS = 61_100_840   # torchvision.models.alexnet
PAPER_NEURONS = 650_000           # "The neural network ... has 60 million parameters and 650,000 neurons"

# One option changed at a time; `baseline` is the paper's network (ReLU, LRN, 3/2 pooling, dropout 0.5,
# PCA lighting, two groups). Values are TrainConfig fields.
VARIANTS = {
    "baseline": {},
    "tanh": dict(activation="tanh"),
    "no_lrn": dict(lrn=False),
    "pool_2_2": dict(pool=(2, 2)),
    "no_dropout": dict(dropout=0.0),
    "no_pca": dict(pca_aug=False),
    "one_group": dict(groups=1),
}

# The claims, in table order: id -> (claim, what the paper says). Tests check every row is written.
CLAIMS = {
    "params": ("Parameters", "60 million"),
    "neurons": ("Neurons", "650,000"),
    "macs": ("Multiply-adds per image", "not stated"),
    "input": ("Input size and conv1 output", "224x224 in, 55x55x96 out"),
    "conv1_split": ("conv1 groups specialise (colour-agnostic vs colour-specific)",
                    "one GPU's 48 kernels largely colour-agnostic, the other's colour-specific (Fig. 3)"),
    "relu": ("ReLU trains faster than tanh",
             "6x fewer epochs to 25% training error (4-layer CNN, CIFAR-10, Fig. 1)"),
    "lrn": ("Local response normalisation lowers error", "top-1 -1.4 points, top-5 -1.2 (ImageNet)"),
    "pool": ("Overlapping pooling (3/2) beats 2/2", "top-1 -0.4 points, top-5 -0.3; slightly harder to overfit"),
    "dropout": ("Dropout curbs overfitting", "without it, substantial overfitting; it ~doubles the iterations"),
    "pca": ("PCA colour augmentation lowers error", "top-1 -1 point or more"),
    "groups": ("Two groups vs one", "top-1 -1.7 points vs a one-GPU net with half the conv kernels"),
    "ten_crop": ("10-crop testing", "averages 4 corners + centre and mirrors (no separate number given)"),
    "neighbours": ("fc7 neighbours share the query's class; pixel neighbours do not",
                   "Fig. 4: fc7 neighbours similar in content, not close in pixel L2 (qualitative)"),
}
SECTION_CLAIMS = {"arithmetic": ("params", "neurons", "macs", "input"), "conv1": ("conv1_split",),
                  "ablations": ("relu", "lrn", "pool", "dropout", "pca", "groups", "ten_crop"),
                  "neighbours": ("neighbours",)}

SMALL_SIZE = 32            # the CIFAR-style net's input side, as CIFAR-10
SMALL_TARGET_ERROR = 0.25  # the paper's Figure 1 threshold
SMALL_LR = 0.01            # SGD, momentum 0.9, batch 64, the same for both activations


@dataclass
class PaperConfig:
    """What `make_report` runs. Defaults are the full-size settings (a GPU); `quick()` is the test size."""
    out: str = "reports"
    data: str | None = None            # image folder; None: alexnet.data.find_data_dir's search
    size: int = 227                    # crop fed to the paper net
    image_size: int | None = None      # decode size; None: size * 256 / 227, the paper's ratio
    width: float = 1.0                 # channel multiplier of the paper net
    epochs: int = 30
    seeds: int = 3
    limit: int | None = None           # images used (stratified); None: all
    batch_size: int = 128
    recipe: str = "modern"             # alexnet.train.RECIPES; see the report for why not 'paper'
    lr: float | None = None            # None: the recipe's
    target_error: float = 0.5          # ReLU vs tanh: epochs until the paper net's training error <= this
    small_epochs: int = 30             # the 4-layer CIFAR-style net
    queries: int = 5                   # neighbours: query images per class
    k: int = 6                         # neighbours per query
    only: tuple[str, ...] = SECTIONS
    device: str = "auto"
    argv: list[str] = field(default_factory=list)   # the command line, for the report

    @property
    def decode_size(self) -> int:
        return self.image_size or max(self.size, round(self.size * 256 / 227))


def quick(**overrides) -> PaperConfig:
    """Tiny everything: every section end to end in seconds (the tests' size)."""
    base = dict(size=67, width=0.125, epochs=1, seeds=2, limit=30, batch_size=8, lr=3e-3, small_epochs=1,
                target_error=0.5)
    return PaperConfig(**{**base, **overrides})


# ---------------------------------------------------------------- verdicts and formatting

def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def verdict(diffs, sign: int = 1) -> str:
    """Do paired differences (the paper's choice minus the alternative) back the paper's direction?

    'agrees' when the mean lies beyond 2 standard errors in the paper's direction, 'disagrees at
    this scale' when beyond 2 the other way, otherwise 'inconclusive at this scale'. Two or three
    seeds make the standard error itself rough, which is why the words say "at this scale".
    """
    d = np.asarray([x for x in diffs if x is not None], dtype=np.float64) * sign
    if d.size < 2:
        return "inconclusive at this scale (fewer than 2 seeds)"
    se = d.std(ddof=1) / math.sqrt(d.size)
    if d.mean() > 2 * se and d.mean() > 0:
        return "agrees"
    if d.mean() < -2 * se and d.mean() < 0:
        return "disagrees at this scale"
    return "inconclusive at this scale"


def _pm(values, scale: float = 100.0, digits: int = 1, unit: str = "") -> str:
    m, s = mean_sd(values)
    if math.isnan(m):
        return "n/a"
    return f"{m * scale:.{digits}f} ± {s * scale:.{digits}f}{unit}"


def _n(count, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _secs(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"


def machine() -> dict:
    """What ran the report: platform, CPU, torch, device."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return dict(platform=platform.platform(), python=platform.python_version(), cpu=cpu, cpu_count=os.cpu_count(),
                torch_threads=torch.get_num_threads(), torch=torch.__version__,
                cuda=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)


# ---------------------------------------------------------------- 1. arithmetic

def arithmetic() -> dict:
    """Per-layer rows and totals for the paper net at 227 and torchvision's at 224 (1000 classes)."""
    out = {}
    for arch, size in (("paper", 227), ("torchvision", 224)):
        rows = layer_table(arch, size)
        out[arch] = dict(
            size=size, rows=rows,
            params=sum(r["params"] for r in rows),
            neurons=sum(r["neurons"] for r in rows if not r["layer"].startswith("pool")),
            macs=sum(r["macs"] for r in rows),
        )
    out["note"] = conv1_note("paper", 227)
    return out


def _arithmetic_claims(a: dict, seconds: float) -> dict:
    p, tv = a["paper"], a["torchvision"]
    conv1 = p["rows"][0]
    how = "alexnet.shapes.layer_table (counted from the modules)"
    return {
        "params": (f"{p['params']:,} (two towers, 1000 classes, with biases); torchvision's one tower: "
                   f"{tv['params']:,}", how, seconds),
        "neurons": (f"{p['neurons']:,} (conv1-5 + fc6-8 outputs at 227; pools not counted); torchvision: "
                    f"{tv['neurons']:,}", how, seconds),
        "macs": (f"{p['macs'] / 1e6:,.0f} M (paper net at 227); torchvision at 224: {tv['macs'] / 1e6:,.0f} M",
                 how, seconds),
        "input": (f"227x227 in, {'x'.join(map(str, conv1['out_shape']))} out: (227 - 11)/4 + 1 = 55 exactly; "
                  f"224 gives 54.25", "alexnet.shapes.conv1_note", seconds),
    }


def _arithmetic_markdown(a: dict) -> list[str]:
    p = a["paper"]
    md = [f"Paper net at {p['size']}x{p['size']}, 1000 classes (from `alexnet.shapes`; "
          "`python -m alexnet.shapes` prints every formula):", "",
          "| layer | out | weights | biases | parameters | neurons | MACs |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in p["rows"]:
        md.append(f"| {r['layer']} | {'x'.join(map(str, r['out_shape']))} | {r['weights']:,} | {r['biases']:,} | "
                  f"{r['params']:,} | {r['neurons']:,} | {r['macs']:,} |")
    md.append(f"| **total** | | | | **{p['params']:,}** | {p['neurons']:,} (without pools) | {p['macs']:,} |")
    tv = a["torchvision"]
    md += ["", f"torchvision's AlexNet at {tv['size']}: {tv['params']:,} parameters, {tv['neurons']:,} neurons, "
           f"{tv['macs']:,} MACs.", "", a["note"].replace("\n", " ")]
    return md


# ---------------------------------------------------------------- the training lab (shared runs)

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
    """Trains the paper net per (variant, seed) once and hands the runs to every section that needs them."""

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


# ---------------------------------------------------------------- 2. conv1 group specialisation

def conv1_groups(weight: torch.Tensor, groups: int, colour_score, split_auc) -> dict:
    """Colour score per filter, median per contiguous block, and AUC of block 0 against block 1.

    AUC 0.5 means no difference; which block turns colourful is arbitrary, so `split` is
    max(AUC, 1 - AUC), and it is compared with the same model's untrained weights.
    """
    s = np.asarray(colour_score(weight), dtype=np.float64)
    blocks = np.arange(s.size).reshape(groups, -1)                  # (groups, N / groups)
    out = dict(medians=[float(np.median(s[b])) for b in blocks], scores=s.tolist())
    if groups == 2:
        auc = split_auc(s, np.arange(s.size) < blocks.shape[1])     # block 0 vs block 1
        out.update(auc=float(auc), split=float(max(auc, 1 - auc)))
    return out


def conv1_section(lab: Lab | None, colour_score, split_auc, seeds: int) -> dict:
    """BVLC's real ImageNet conv1, and the baseline (two-group) models before and after training."""
    model, _ = W.load_caffe(BVLC_CONV1)
    bvlc = conv1_groups(model.param_layer("conv1").weight, 2, colour_score, split_auc)
    trained, initial = [], []
    if lab is not None:
        for seed in range(seeds):
            m, _ = lab.model("baseline", seed)
            trained.append(conv1_groups(m.param_layer("conv1").weight, 2, colour_score, split_auc))
            torch.manual_seed(seed)                                 # alexnet.train seeds the init this way
            init = build("paper", len(lab.decoded().classes), width=lab.cfg.width)
            initial.append(conv1_groups(init.param_layer("conv1").weight, 2, colour_score, split_auc))
    return dict(bvlc=bvlc, trained=trained, initial=initial)


def _conv1_claim(c: dict, seconds: float, cfg: PaperConfig) -> tuple:
    b = c["bvlc"]
    text = (f"BVLC ImageNet conv1: median colour score {b['medians'][0]:.2f} (filters 0-47) vs "
            f"{b['medians'][1]:.2f} (48-95), AUC {b['split']:.2f}")
    if c["trained"]:
        tr = [t["split"] for t in c["trained"]]
        init = [t["split"] for t in c["initial"]]
        v = verdict([t - i for t, i in zip(tr, init)])
        grew = "the split grows with training" if v == "agrees" else "no split beyond the untrained weights"
        text += (f". Flowers, {len(tr)} seeds: AUC {_pm(tr, 1, 2)} after training vs {_pm(init, 1, 2)} at init: "
                 f"{grew} ({v})")
    how = ("colour score = share of filter energy off the grey axis (viz.filters); AUC of one group's scores "
           "against the other's (0.5 = no split)")
    if c["trained"]:
        how += f"; baseline runs at {cfg.size}px, width {cfg.width:g}, {_n(cfg.epochs, 'epoch')}"
    return text, how, seconds


def _conv1_markdown(c: dict) -> list[str]:
    md = ["| model | median score, group 0 | median score, group 1 | split AUC (0.5 = none, 1 = full) |",
          "|---|---:|---:|---:|"]
    b = c["bvlc"]
    md.append(f"| BVLC AlexNet (ImageNet) | {b['medians'][0]:.3f} | {b['medians'][1]:.3f} | {b['split']:.3f} |")
    for seed, (t, i) in enumerate(zip(c["trained"], c["initial"])):
        md.append(f"| flowers baseline, seed {seed}, untrained | {i['medians'][0]:.3f} | {i['medians'][1]:.3f} | "
                  f"{i['split']:.3f} |")
        md.append(f"| flowers baseline, seed {seed}, trained | {t['medians'][0]:.3f} | {t['medians'][1]:.3f} | "
                  f"{t['split']:.3f} |")
    md += ["", "In the BVLC file the colour-specific block is filters 0-47; the paper's Figure 3 shows it on "
           "GPU 2. Which block becomes colourful is arbitrary (the two towers are symmetric), so the split is "
           "measured as max(AUC, 1 - AUC). Random weights score about 2/3 in every group; with few filters "
           "per group the AUC of random weights already strays from 0.5, hence the untrained rows."]
    return md


# ---------------------------------------------------------------- 3. ablations

def epochs_to_error(history: list[dict], target: float, start_error: float) -> float | None:
    """First (fractional) epoch at which the training error reaches `target`, linearly interpolated
    between epoch ends (epoch 0 = `start_error`, chance); None when it never does."""
    prev_e, prev = 0.0, start_error
    for row in history:
        err = 1.0 - row["train_acc"]
        if err <= target:
            if prev <= target:
                return prev_e
            return prev_e + (prev - target) / (prev - err) * (row["epoch"] - prev_e)
        prev_e, prev = float(row["epoch"]), err
    return None


def small_net(activation: str, num_classes: int) -> nn.Sequential:
    """A 4-layer CIFAR-style CNN (3 conv + 1 fc) at 32x32, as in the paper's Figure 1 experiment."""
    act = nn.ReLU if activation == "relu" else nn.Tanh
    return nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),    # (B, 32, 15, 15)
        nn.Conv2d(32, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),   # (B, 32, 7, 7)
        nn.Conv2d(32, 64, 5, padding=2), act(), nn.MaxPool2d(3, 2),   # (B, 64, 3, 3)
        nn.Flatten(), nn.Linear(64 * 3 * 3, num_classes),             # (B, 576) -> (B, K)
    )


def train_small(images32: torch.Tensor, labels: torch.Tensor, activation: str, seed: int, epochs: int,
                device: torch.device, batch_size: int = 64, lr: float = SMALL_LR) -> list[dict]:
    """Plain SGD on normalised 32x32 float images; returns per-epoch training error (running, as Fig. 1)."""
    torch.manual_seed(seed)
    net = small_net(activation, int(labels.max()) + 1).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    x, y = images32.to(device), labels.to(device)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        net.train()
        wrong, t0 = 0, time.perf_counter()
        for b in torch.randperm(len(y), generator=gen).split(batch_size):
            b = b.to(device)
            out = net(x[b])
            loss = F.cross_entropy(out, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += (out.argmax(1) != y[b]).sum().item()
        history.append(dict(epoch=epoch, train_acc=1.0 - wrong / len(y), seconds=time.perf_counter() - t0))
    return history


def small_relu_tanh(lab: Lab, seeds: int, epochs: int) -> dict:
    """ReLU vs tanh on the 4-layer net, flowers downsampled to 32x32 (no CIFAR-10 offline)."""
    dec = lab.decoded()
    k = len(dec.classes)
    runs = {"relu": [], "tanh": []}
    t0 = time.perf_counter()
    for seed in range(seeds):
        tr, _ = lab.split(seed)
        x = F.interpolate(dec.images[tr].float().div_(255), size=(SMALL_SIZE, SMALL_SIZE), mode="bilinear",
                          antialias=True, align_corners=False)          # (N, 3, 256, 256) -> (N, 3, 32, 32)
        mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
        x = (x - mean) / std
        for act in runs:
            h = train_small(x, dec.labels[tr], act, seed, epochs, lab.device)
            runs[act].append(dict(history=h, epochs_to_target=epochs_to_error(h, SMALL_TARGET_ERROR, 1 - 1 / k)))
    return dict(runs=runs, seconds=time.perf_counter() - t0, target=SMALL_TARGET_ERROR, epochs=epochs,
                n_train=len(lab.split(0)[0]))


def _ratio_text(relu: list, tanh: list, epochs: int, target: float) -> str:
    """Epochs to `target` per activation, tanh/ReLU ratio (the paper's 6x) and a verdict on the paired
    differences. A run that never got there counts as `epochs`, so its ratio is a bound."""
    reached = lambda xs: f"{sum(x is not None for x in xs)}/{len(xs)}"  # noqa: E731
    if not any(r is not None for r in relu):
        return (f"ReLU never reached {target:.0%} training error in {_n(epochs, 'epoch')} "
                f"(tanh: {reached(tanh)} seeds did): inconclusive at this scale")
    pairs = [(r, float(epochs) if t is None else t) for r, t in zip(relu, tanh) if r is not None]
    bound = any(t is None for r, t in zip(relu, tanh) if r is not None)
    m, s = mean_sd([t / max(r, 1e-9) for r, t in pairs])
    th = _pm([t for t in tanh if t is not None], 1, 1) if any(t is not None for t in tanh) else "never"
    return (f"epochs to {target:.0%} train error: ReLU {_pm([r for r, _ in pairs], 1, 1)} ({reached(relu)} seeds), "
            f"tanh {th} ({reached(tanh)} seeds); tanh/ReLU {'>= ' if bound else ''}{m:.2f}x ± {s:.2f} "
            f"({verdict([t - r for r, t in pairs])})")


def ablations(lab: Lab, seeds: int) -> dict:
    """Every variant for every seed, the 10-crop test on the baseline, and the 4-layer ReLU/tanh net."""
    cfg = lab.cfg
    k = len(lab.decoded().classes)
    res: dict = dict(variants={}, chance=lab.chance())
    for variant in VARIANTS:
        runs = [lab.run(variant, seed) for seed in range(seeds)]
        res["variants"][variant] = dict(
            val=[r.val_acc for r in runs], train=[r.history[-1]["train_acc"] for r in runs],
            seconds=sum(r.seconds for r in runs),
            curves=[[1 - h["train_acc"] for h in r.history] for r in runs],
            epochs_to_target=[epochs_to_error(r.history, cfg.target_error, 1 - 1 / k) for r in runs])
    # Dropout's train/val gap: training accuracy measured like validation (eval mode, centre crop), since
    # the running training accuracy is taken with dropout and augmentation on.
    dec = lab.decoded()
    for variant in ("baseline", "no_dropout"):
        t0 = time.perf_counter()
        fit = []
        for seed in range(seeds):
            model, meta = lab.model(variant, seed)
            tr, _ = lab.split(seed)
            fit.append(evaluate(model, meta, dec.images[tr], dec.labels[tr], device=lab.device)["top1"])
        res["variants"][variant]["train_eval"] = fit
        res["variants"][variant]["seconds"] += time.perf_counter() - t0
    t0 = time.perf_counter()
    centre, ten = [], []
    for seed in range(seeds):
        model, meta = lab.model("baseline", seed)
        _, va = lab.split(seed)
        centre.append(evaluate(model, meta, dec.images[va], dec.labels[va], device=lab.device)["top1"])
        ten.append(evaluate(model, meta, dec.images[va], dec.labels[va], ten_crop=True, device=lab.device)["top1"])
    res["ten_crop"] = dict(centre=centre, ten=ten, seconds=time.perf_counter() - t0)
    res["small"] = small_relu_tanh(lab, seeds, cfg.small_epochs)
    return res


def _ablation_claims(a: dict, cfg: PaperConfig) -> dict:
    v = a["variants"]
    base = v["baseline"]
    weak = mean_sd(base["val"])[0] < a["chance"] + 0.10
    scale = (f"{cfg.size}px, width {cfg.width:g}, {_n(cfg.epochs, 'epoch')}, {_n(cfg.seeds, 'seed')}, "
             f"{'all' if cfg.limit is None else cfg.limit} images, recipe {cfg.recipe}")

    def diff_claim(alt: str, what: str) -> tuple:
        diffs = [b - x for b, x in zip(base["val"], v[alt]["val"])]
        verdict_ = verdict(diffs)
        if weak:
            verdict_ = "inconclusive at this scale (the baseline barely beats chance)"
        text = (f"val accuracy {_pm(base['val'])}% with {what} vs {_pm(v[alt]['val'])}% without: "
                f"{_pm(diffs, unit=' points')} ({verdict_})")
        return text, f"flowers val top-1, paired by seed; {scale}", v[alt]["seconds"]

    out = {}
    r, t = base["epochs_to_target"], v["tanh"]["epochs_to_target"]
    sm = a["small"]
    small_text = _ratio_text([x["epochs_to_target"] for x in sm["runs"]["relu"]],
                             [x["epochs_to_target"] for x in sm["runs"]["tanh"]], sm["epochs"], sm["target"])
    out["relu"] = (f"paper net: {_ratio_text(r, t, cfg.epochs, cfg.target_error)}. 4-layer net at 32px: {small_text}",
                   f"training error per epoch (running, with augmentation), interpolated to the target; 4-layer net: "
                   f"flowers downsampled to 32x32 (no CIFAR-10 offline), SGD lr {SMALL_LR} for both, "
                   f"{_n(sm['epochs'], 'epoch')}, {sm['n_train']} images; paper net: {scale}",
                   v["tanh"]["seconds"] + sm["seconds"])
    out["lrn"] = diff_claim("no_lrn", "LRN")
    out["pool"] = diff_claim("pool_2_2", "3/2 pooling (vs 2/2)")
    out["pca"] = diff_claim("no_pca", "PCA lighting")
    out["groups"] = diff_claim("one_group", "two groups (vs one at the same width)")
    gap_d = [tr - va for tr, va in zip(base["train_eval"], base["val"])]
    gap_n = [tr - va for tr, va in zip(v["no_dropout"]["train_eval"], v["no_dropout"]["val"])]
    verdict_ = verdict([n - d for n, d in zip(gap_n, gap_d)])
    if weak:
        verdict_ = "inconclusive at this scale (the baseline barely beats chance)"
    out["dropout"] = (f"train-val gap {_pm(gap_d, unit=' points')} with dropout vs {_pm(gap_n, unit=' points')} "
                      f"without ({verdict_})",
                      f"train accuracy in eval mode (centre crop) minus val accuracy; {scale}",
                      v["no_dropout"]["seconds"])
    tc = a["ten_crop"]
    d = [x - c for x, c in zip(tc["ten"], tc["centre"])]
    out["ten_crop"] = (f"val accuracy {_pm(tc['centre'])}% centre crop vs {_pm(tc['ten'])}% 10-crop: "
                       f"{_pm(d, unit=' points')} ({verdict(d)})",
                       f"alexnet.evaluate on the baseline models; {scale}", tc["seconds"])
    return out


def _ablation_markdown(a: dict, cfg: PaperConfig) -> list[str]:
    v = a["variants"]
    md = [f"Chance (largest class): {a['chance']:.1%}. Baseline = the paper's choices; each row changes one.", "",
          "| variant | val top-1 % (mean ± sd) | per seed | train acc % (running) | "
          f"epochs to {cfg.target_error:.0%} train error | time |", "|---|---:|---|---:|---|---:|"]
    for name, r in v.items():
        per = ", ".join(f"{x:.3f}" for x in r["val"])
        ett = ", ".join("-" if e is None else f"{e:.1f}" for e in r["epochs_to_target"])
        md.append(f"| {name} | {_pm(r['val'])} | {per} | {_pm(r['train'])} | {ett} | {_secs(r['seconds'])} |")
    for name in ("baseline", "no_dropout"):
        md.append("")
        md.append(f"{name}: train accuracy in eval mode {_pm(v[name]['train_eval'])}% vs val {_pm(v[name]['val'])}%.")
    tc = a["ten_crop"]
    md += ["", f"10-crop on the baseline: centre {', '.join(f'{x:.3f}' for x in tc['centre'])}; "
           f"10-crop {', '.join(f'{x:.3f}' for x in tc['ten'])}."]
    sm = a["small"]
    md += ["", f"4-layer CIFAR-style net (3 conv + 1 fc) on the flowers downsampled to 32x32, {sm['n_train']} "
           f"training images, SGD lr {SMALL_LR} momentum 0.9 batch 64, {_n(sm['epochs'], 'epoch')} (the paper tuned each "
           "network's learning rate; this uses one for both):", "",
           f"| activation | epochs to {sm['target']:.0%} train error, per seed | final train error % |", "|---|---|---:|"]
    for act, runs in sm["runs"].items():
        ett = ", ".join("never" if r["epochs_to_target"] is None else f"{r['epochs_to_target']:.1f}" for r in runs)
        md.append(f"| {act} | {ett} | {_pm([1 - r['history'][-1]['train_acc'] for r in runs])} |")
    r = RECIPES[cfg.recipe]
    md += ["", f"Recipe `{cfg.recipe}`: {r['optimizer']}, {r['schedule']} schedule, lr "
           f"{cfg.lr if cfg.lr is not None else r['lr']['scratch']:g}, weight decay {r['weight_decay']:g}."]
    if cfg.recipe != "paper":
        md.append("The paper's recipe (`--recipe paper`: SGD, lr 0.01, momentum 0.9, weight decay 5e-4) left the "
                  "paper net at 80px, width 0.25 at chance accuracy for 6 epochs in a trial on 2 CPU cores, so "
                  "short runs use AdamW with one-cycle; every variant gets the same recipe.")
    md += ["The paper's two-group comparison was against a one-GPU net with half the conv kernels; here both "
           "nets have the same width, so `one_group` has more conv2/4/5 weights than `baseline`.",
           "Training error here is the running error over each epoch, with dropout and augmentation on, "
           "as the paper's Figure 1 plots it; the crossing epoch is interpolated between epoch ends."]
    return md


# ---------------------------------------------------------------- 4. fc7 nearest neighbours

@torch.no_grad()
def fc7_and_pixels(model: nn.Module, meta: dict, images: torch.Tensor, device, batch_size: int = 64):
    """(N, D) fc7 activations and (N, 3*S*S) centre-crop pixels in 0-1, for uint8 (N, 3, H, W) images."""
    model = dev_.prepare(model, device).eval()
    size = int(meta["input_size"])
    feats, pixels = [], []
    for i in range(0, len(images), batch_size):
        u = D.center_crop(images[i:i + batch_size], size)                  # (B, 3, S, S) uint8
        x = dev_.to_input(D.normalize(u, meta["mean"], meta["std"]), device)
        with dev_.autocast(device):
            _, acts = model(x, return_activations=True)
        feats.append(acts["fc7"].float().cpu())
        pixels.append(u.float().div(255).flatten(1))                       # (B, 3, S, S) -> (B, 3*S*S)
    return torch.cat(feats).numpy(), torch.cat(pixels).numpy()


def nearest(bank: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices into `bank` of each query's k nearest rows by Euclidean distance, nearest first."""
    d = (queries ** 2).sum(1)[:, None] + (bank ** 2).sum(1)[None, :] - 2.0 * queries @ bank.T   # (Q, N)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def neighbours_section(lab: Lab, queries_per_class: int, k: int, seed: int = 0) -> dict:
    """The paper's Figure 4 argument, counted: same-class share of fc7 vs pixel-space neighbours."""
    model, meta = lab.model("baseline", seed)
    dec = lab.decoded()
    tr, va = lab.split(seed)
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(len(dec.classes)):
        members = va[dec.labels[va] == c]
        picks += members[torch.randperm(len(members), generator=g)[:queries_per_class]].tolist()
    picks = torch.tensor(picks, dtype=torch.int64)
    t0 = time.perf_counter()
    f_bank, p_bank = fc7_and_pixels(model, meta, dec.images[tr], lab.device)
    f_q, p_q = fc7_and_pixels(model, meta, dec.images[picks], lab.device)
    k = min(k, len(tr))
    nn_f, nn_p = nearest(f_bank, f_q, k), nearest(p_bank, p_q, k)        # (Q, k) indices into tr
    y_tr, y_q = dec.labels[tr].numpy(), dec.labels[picks].numpy()
    same_f = (y_tr[nn_f] == y_q[:, None]).mean(1)                          # (Q,)
    same_p = (y_tr[nn_p] == y_q[:, None]).mean(1)
    per_class = {dec.classes[c]: dict(fc7=float(same_f[y_q == c].mean()), pixels=float(same_p[y_q == c].mean()))
                 for c in np.unique(y_q)}
    chance = float(np.mean([(y_tr == c).mean() for c in y_q]))
    return dict(fc7=float(same_f.mean()), pixels=float(same_p.mean()), chance=chance, per_class=per_class,
                per_query=dict(fc7=same_f.tolist(), pixels=same_p.tolist()),
                queries=picks.tolist(), fc7_neighbours=tr[nn_f].tolist(), pixel_neighbours=tr[nn_p].tolist(),
                k=k, seconds=time.perf_counter() - t0, val_acc=lab.run("baseline", seed).val_acc)


def _neighbours_claim(n: dict, cfg: PaperConfig) -> tuple:
    word = verdict([f - p for f, p in zip(n["per_query"]["fc7"], n["per_query"]["pixels"])])
    text = (f"same-class share of the {n['k']} nearest training images: fc7 {n['fc7']:.0%}, pixels "
            f"{n['pixels']:.0%}, chance {n['chance']:.0%} ({word}, paired over {len(n['queries'])} queries)")
    how = (f"Euclidean distance on fc7 (baseline seed 0, val acc {n['val_acc']:.1%}) and on centre-crop pixels; "
           f"queries from the val split, neighbours from train; {cfg.size}px, width {cfg.width:g}")
    return text, how, n["seconds"]


def _neighbours_markdown(n: dict) -> list[str]:
    md = ["| class | fc7 same-class share | pixel same-class share |", "|---|---:|---:|"]
    for c, r in n["per_class"].items():
        md.append(f"| {c} | {r['fc7']:.0%} | {r['pixels']:.0%} |")
    md.append(f"| **all** | **{n['fc7']:.0%}** | **{n['pixels']:.0%}** |")
    return md


# ---------------------------------------------------------------- plots (matplotlib's object API)

def _figure(w: float, h: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(w, h), dpi=80, layout="constrained")


def _save_png(fig, path: Path) -> None:
    """A 256-colour PNG: plots lose nothing, photo thumbnails a little, and the files stay small."""
    from PIL import Image
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    img = Image.open(buf).convert("RGB").quantize(256)
    W.atomic_write_bytes(path, lambda tmp: img.save(tmp, format="PNG", optimize=True))


def plot_conv1(c: dict):
    fig = _figure(7.5, 3.2)
    ax = fig.add_subplot()
    models = [("BVLC\nImageNet", c["bvlc"])]
    for s, (i, t) in enumerate(zip(c["initial"], c["trained"])):
        models += [(f"seed {s}\nuntrained", i), (f"seed {s}\ntrained", t)]
    for j, (name, m) in enumerate(models):
        s = np.asarray(m["scores"])
        half = s.size // 2
        for g, colour in ((0, "#d1495b"), (1, "#3b6fb6")):
            ax.boxplot(s[g * half:(g + 1) * half], positions=[j * 3 + g], widths=0.8, patch_artist=True,
                       boxprops=dict(facecolor=colour, alpha=0.6), medianprops=dict(color="k"), showfliers=False)
    ax.axhline(2 / 3, color="0.5", linestyle=":", label="random weights (2/3)")
    ax.set_xticks([j * 3 + 0.5 for j in range(len(models))], [n for n, _ in models], fontsize=8)
    ax.set_ylabel("colour score")
    ax.set_title("conv1 colour score by group (red: filters of group 0, blue: group 1)", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_ablations(a: dict, cfg: PaperConfig):
    fig = _figure(9.5, 3.6)
    ax1, ax2 = fig.subplots(1, 2, width_ratios=(1.3, 1))
    names = list(a["variants"]) + ["10-crop"]
    vals = [a["variants"][n]["val"] for n in a["variants"]] + [a["ten_crop"]["ten"]]
    for j, v in enumerate(vals):
        m, s = mean_sd(v)
        ax1.bar(j, m * 100, yerr=s * 100, color="#3b6fb6" if j else "#66a182", alpha=0.7, capsize=3)
        ax1.scatter([j] * len(v), np.asarray(v) * 100, color="k", s=8, zorder=3)
    ax1.axhline(a["chance"] * 100, color="0.5", linestyle=":", label="chance")
    ax1.set_xticks(range(len(names)), names, rotation=35, fontsize=8, ha="right")
    ax1.set_ylabel("val top-1 %")
    ax1.set_title(f"one change at a time ({cfg.size}px, width {cfg.width:g})", fontsize=10)
    ax1.legend(fontsize=8)
    for name, colour in (("baseline", "#d1495b"), ("tanh", "#3b6fb6")):
        for i, curve in enumerate(a["variants"][name]["curves"]):
            ax2.plot(range(1, len(curve) + 1), np.asarray(curve) * 100, color=colour, alpha=0.8, marker=".",
                     label=f"paper net, {'ReLU' if name == 'baseline' else 'tanh'}" if i == 0 else None)
    for act, colour in (("relu", "#d1495b"), ("tanh", "#3b6fb6")):
        for i, r in enumerate(a["small"]["runs"][act]):
            e = [1 - h["train_acc"] for h in r["history"]]
            ax2.plot(range(1, len(e) + 1), np.asarray(e) * 100, color=colour, linestyle="--", alpha=0.8, marker=".",
                     label=f"4-layer 32px, {act}" if i == 0 else None)
    ax2.axhline(cfg.target_error * 100, color="#d1495b", linestyle=":", linewidth=0.8)
    ax2.axhline(a["small"]["target"] * 100, color="0.3", linestyle=":", linewidth=0.8)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training error %")
    ax2.set_title("ReLU vs tanh", fontsize=10)
    ax2.legend(fontsize=7)
    return fig


def plot_neighbours(n: dict, dec: D.Decoded, rows: int = 5, thumb: int = 40):
    """One query per class: the query, its fc7 neighbours, its pixel neighbours; frames green = same class."""
    from PIL import Image
    queries = n["queries"]
    per = max(1, len(queries) // max(1, len(set(dec.labels[queries].tolist()))))
    chosen = list(range(0, len(queries), per))[:rows]

    def tile(i: int, same: bool | None) -> np.ndarray:
        img = np.asarray(Image.fromarray(dec.images[i].permute(1, 2, 0).numpy()).resize((thumb, thumb)))
        t = np.full((thumb + 4, thumb + 4, 3), 255, np.uint8)
        if same is not None:
            t[:] = (60, 170, 80) if same else (210, 60, 60)
        t[2:-2, 2:-2] = img
        return t

    blank = np.full((thumb + 4, 8, 3), 255, np.uint8)
    lines = []
    for q in chosen:
        qi, y = queries[q], int(dec.labels[queries[q]])
        row = [tile(qi, None), blank]
        row += [tile(i, int(dec.labels[i]) == y) for i in n["fc7_neighbours"][q]] + [blank]
        row += [tile(i, int(dec.labels[i]) == y) for i in n["pixel_neighbours"][q]]
        lines.append(np.concatenate(row, 1))
    mosaic = np.concatenate(lines, 0)
    fig = _figure(mosaic.shape[1] / 80 + 0.3, mosaic.shape[0] / 80 + 0.6)
    ax = fig.add_subplot()
    ax.imshow(mosaic, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(thumb + 4) * (r + 0.5) for r in range(len(chosen))],
                  [dec.classes[int(dec.labels[queries[q]])] for q in chosen], fontsize=8)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(f"query | {n['k']} nearest in fc7 ({n['fc7']:.0%} same class) | {n['k']} nearest in pixels "
                 f"({n['pixels']:.0%}); green frame = same class", fontsize=8)
    return fig


# ---------------------------------------------------------------- the report

def claims_table(claims: dict) -> list[str]:
    md = ["| claim | paper | this project | how obtained | time |", "|---|---|---|---|---:|"]
    for cid, (claim, paper) in CLAIMS.items():
        if cid in claims:
            text, how, seconds = claims[cid]
            md.append(f"| {claim} | {paper} | {text} | {how} | {_secs(seconds)} |")
    return md


def make_report(cfg: PaperConfig, colour_score=None, split_auc=None, log=None) -> dict:
    """Run the chosen sections, then write `<out>/paper.md`, `paper.json` and PNGs (see `write_report`).

    `colour_score(weight) -> (N,) scores` and `split_auc(scores, labels) -> float` (viz.filters's) are
    needed for the conv1 section only.
    """
    unknown = set(cfg.only) - set(SECTIONS)
    if unknown:
        raise ValueError(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if "conv1" in cfg.only and (colour_score is None or split_auc is None):
        raise ValueError("the conv1 section needs colour_score and split_auc (viz.filters's); pass them, "
                         "or leave conv1 out of `only`")
    if cfg.seeds < 1 or cfg.epochs < 1:
        raise ValueError("--seeds and --epochs must be at least 1")
    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    started = _dt.datetime.now().astimezone()
    t_start = time.perf_counter()
    info = machine()
    sections: dict[str, dict] = {}
    decoded = None
    workdir = Path(tempfile.mkdtemp(prefix="alexnet-paper-"))   # checkpoints of the runs, deleted at the end
    try:
        lab = Lab(cfg, workdir, log) if {"conv1", "ablations", "neighbours"} & set(cfg.only) else None
        if lab is not None:
            info.update(device=str(lab.device), data=str(lab.root))
        if "arithmetic" in cfg.only:
            log("arithmetic")
            t0 = time.perf_counter()
            a = arithmetic()
            sections["arithmetic"] = dict(seconds=time.perf_counter() - t0,
                                          **{arch: {k: a[arch][k] for k in ("params", "neurons", "macs")}
                                             for arch in ("paper", "torchvision")})
        if "ablations" in cfg.only:   # first: the conv1 and neighbours sections reuse its baseline runs
            log(f"ablations: {len(VARIANTS)} variants x {cfg.seeds} seeds")
            t0 = time.perf_counter()
            sections["ablations"] = ablations(lab, cfg.seeds)
            sections["ablations"]["seconds"] = time.perf_counter() - t0
        if "conv1" in cfg.only:
            log("conv1")
            t0 = time.perf_counter()
            sections["conv1"] = conv1_section(lab, colour_score, split_auc, cfg.seeds)
            sections["conv1"].update(seconds=time.perf_counter() - t0,
                                     baseline_seconds=sum(lab.run("baseline", s).seconds for s in range(cfg.seeds)))
        if "neighbours" in cfg.only:
            log("neighbours")
            t0 = time.perf_counter()
            sections["neighbours"] = neighbours_section(lab, cfg.queries, cfg.k)
            sections["neighbours"]["seconds"] = time.perf_counter() - t0
            decoded = lab.decoded()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    payload = dict(generated=started.isoformat(timespec="seconds"), seconds=time.perf_counter() - t_start,
                   machine=info, config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
                   sections=sections)
    return write_report(json.loads(json.dumps(payload, default=_json_default)), cfg.out, decoded)


def write_report(payload: dict, out: str | os.PathLike, decoded: D.Decoded | None = None) -> dict:
    """Render measured results (`paper.json`'s content) into `<out>/paper.md`, PNGs and `paper.json`, atomically.

    Nothing is trained or measured here, so `python -m alexnet.paper --render paper.json` can redo the
    text and plots of an earlier run. `decoded` (the images, for the neighbour thumbnails) is read from
    the data folder's decode cache when not given.
    """
    cfg = PaperConfig(**{**payload["config"], "only": tuple(payload["config"]["only"])})
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sec, info = payload["sections"], payload["machine"]
    claims: dict[str, tuple] = {}
    body: dict[str, list[str]] = {}
    pngs: list[str] = []
    if "arithmetic" in sec:
        a, secs = arithmetic(), sec["arithmetic"]["seconds"]
        claims.update(_arithmetic_claims(a, secs))
        body["arithmetic"] = [f"## 1. Exact arithmetic ({_secs(secs)})", ""] + _arithmetic_markdown(a) + [""]
    if "conv1" in sec:
        c = sec["conv1"]
        baseline = c.get("baseline_seconds")       # absent in early paper.json files: the ablation's baseline time
        if baseline is None:
            baseline = sec.get("ablations", {}).get("variants", {}).get("baseline", {}).get("seconds", 0.0)
        claims["conv1_split"] = _conv1_claim(c, c["seconds"] + baseline, cfg)
        _save_png(plot_conv1(c), out / "conv1_groups.png")
        pngs.append("conv1_groups.png")
        body["conv1"] = [f"## 2. conv1 group specialisation ({_secs(c['seconds'])} + the baseline runs)", "",
                         "![conv1 groups](conv1_groups.png)", ""] + _conv1_markdown(c) + [""]
    if "ablations" in sec:
        ab = sec["ablations"]
        claims.update(_ablation_claims(ab, cfg))
        _save_png(plot_ablations(ab, cfg), out / "ablations.png")
        pngs.append("ablations.png")
        body["ablations"] = ([f"## 3. Ablations on the flowers ({_secs(ab['seconds'])})", "",
                              "![ablations](ablations.png)", ""] + _ablation_markdown(ab, cfg) + [""])
    if "neighbours" in sec:
        n = sec["neighbours"]
        claims["neighbours"] = _neighbours_claim(n, cfg)
        decoded = decoded or D.decode_folder(D.find_data_dir(info.get("data") or cfg.data), cfg.decode_size)
        _save_png(plot_neighbours(n, decoded), out / "neighbours.png")
        pngs.append("neighbours.png")
        body["neighbours"] = ([f"## 4. fc7 nearest neighbours ({_secs(n['seconds'])})", "",
                               "![neighbours](neighbours.png)", ""] + _neighbours_markdown(n) + [""])
    header = [
        "# AlexNet (Krizhevsky, Sutskever, Hinton 2012): the paper's claims beside this project's numbers", "",
        f"Generated {payload['generated']} by `python -m alexnet.paper {' '.join(cfg.argv)}` "
        f"in {_secs(payload['seconds'])}." + (f" Text and plots re-rendered from its paper.json on "
                                              f"{payload['rendered']} (nothing re-measured)."
                                              if payload.get("rendered") else ""), "",
        f"Machine: {info['platform']}; {info['cpu']}, {info['cpu_count']} CPUs ({info['torch_threads']} torch "
        f"threads); Python {info['python']}; torch {info['torch']}; device {info.get('device', 'cpu')}"
        + (f" ({info['cuda']})" if info.get("cuda") else "") + ".", "",
        f"Settings: {cfg.size}px crops of {cfg.decode_size}px images, width {cfg.width:g}, "
        f"{_n(cfg.epochs, 'epoch')}, {_n(cfg.seeds, 'seed')}, {'all' if cfg.limit is None else cfg.limit} images, "
        f"batch {cfg.batch_size}, recipe {cfg.recipe}" + (f", lr {cfg.lr:g}" if cfg.lr else "") + ". The same "
        "code runs full size on a GPU (`--size 227 --width 1 --device cuda`). A verdict of \"inconclusive at this "
        "scale\" means the seeds' spread is too wide (or the models too weak) to support or refute the paper "
        "here.", "",
        "## Claims", ""] + claims_table(claims) + [""]
    md = "\n".join(header + [line for s in SECTIONS for line in body.get(s, [])]) + "\n"
    W.atomic_write_text(out / "paper.md", md)
    payload = dict(payload, pngs=pngs,
                   claims={cid: dict(claim=CLAIMS[cid][0], paper=CLAIMS[cid][1], project=v[0], how=v[1], seconds=v[2])
                           for cid, v in claims.items()})
    W.atomic_write_text(out / "paper.json", json.dumps(payload, indent=1, default=_json_default))
    return dict(markdown=md, claims=claims, sections=sec, machine=info, seconds=payload["seconds"],
                paths=[out / "paper.md", out / "paper.json"] + [out / p for p in pngs])


def _json_default(o):
    if isinstance(o, (np.integer, np.floating)):
        return o.item()
    if isinstance(o, (np.ndarray, torch.Tensor)):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"cannot serialise {type(o).__name__}")


# ---------------------------------------------------------------- CLI (the composition root)

def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m alexnet.paper",
        description="Check the AlexNet paper's claims on this project's code and data: writes <out>/paper.md, "
                    "paper.json and PNG plots. Defaults are full size (use a GPU); for 2 CPU cores try "
                    "--size 80 --width 0.25 --epochs 8 --limit 1000 --batch-size 32.")
    p.add_argument("--out", default=None, help="output folder (default: reports)")
    p.add_argument("--data", default=None, help="image folder, one sub-folder per class (default: the flowers)")
    p.add_argument("--size", type=int, default=None, help="crop size fed to the paper net (default: 227; CPU: 80-112)")
    p.add_argument("--image-size", type=int, default=None, help="decode size (default: size * 256 / 227)")
    p.add_argument("--width", type=float, default=None, help="channel multiplier (default: 1; CPU: 0.25)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per ablation run (default: 30)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per variant (default: 3)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images, stratified (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="(default: 128)")
    p.add_argument("--recipe", default=None, choices=tuple(RECIPES), help="training recipe (default: modern)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--target-error", type=float, default=None,
                   help="ReLU vs tanh on the paper net: epochs to this training error (default: 0.5)")
    p.add_argument("--small-epochs", type=int, default=None, help="epochs of the 4-layer 32px net (default: 30)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections (default: {','.join(SECTIONS)})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: %(default)s)")
    p.add_argument("--render", default=None, metavar="PAPER_JSON",
                   help="only redo paper.md and the plots from an earlier run's paper.json (into --out, default: "
                        "its folder); nothing is trained")
    p.add_argument("--quick", action="store_true",
                   help="tiny everything (67px, width 0.125, 1 epoch, 2 seeds, 30 images): an end-to-end check")
    return p


def config_from_args(args: argparse.Namespace, argv: list[str]) -> PaperConfig:
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("quick", "only", "render")}
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    cfg = quick(**given) if args.quick else PaperConfig(**given)
    return replace(cfg, only=only, argv=list(argv))


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_args_parser().parse_args(argv)
    if args.render:
        try:
            src = Path(args.render)
            payload = json.loads(src.read_text())
            payload["rendered"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
            result = write_report(payload, args.out or src.parent)
        except (OSError, ValueError, KeyError, D.DataError) as e:
            print(f"error: cannot render {args.render}: {e}", file=sys.stderr)
            return 2
        print(f"wrote {', '.join(str(p) for p in result['paths'])}")
        return 0
    cfg = config_from_args(args, argv)
    colour = {}
    if "conv1" in cfg.only:
        # The one upward import, and only here: viz.filters owns the colour score the app's Filters tab shows.
        from viz.filters import colour_score, split_auc
        colour = dict(colour_score=colour_score, split_auc=split_auc)
    try:
        result = make_report(cfg, **colour)
    except (ValueError, D.DataError, W.WeightsError) as e:   # ConfigError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in result['paths'])} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
