"""Do the maps mean anything? Two checks over `viz.attribution` methods, each one call -> numbers + a figure.

- `sanity_check`: cascading randomisation (Adebayo et al. 2018). Re-initialise layers from fc8
  down, one more each step, on a deep copy; a map that depends on what the network learned must
  drift away from the original (Spearman rank correlation falls). A map that stays put is an
  edge detector, whatever the weights.
- `faithfulness`: deletion and insertion (Petsiuk et al. 2018, RISE). Remove (or add) pixels
  in the order the map ranks them and watch the target probability; a faithful map makes it
  fall fast (low deletion AUC) and rise fast (high insertion AUC). All steps of a curve are
  forwarded as batches, not one image per step.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import nn

from alexnet.model import CONV_LAYERS, FC_LAYERS
from viz.attribution import as_batch, attribute_map, check_method, predicted_class
from viz.methods import names
from viz.plots import new_figure

RANDOMISE_ORDER = tuple(reversed(CONV_LAYERS + FC_LAYERS))  # fc8, fc7, ..., conv1: top down, as in the paper


def _methods(methods, **default) -> tuple[str, ...]:
    """The names asked for, checked; None: the registered methods whose records match `default`."""
    return tuple(check_method(m) for m in methods) if methods is not None else names(**default)


def _options(method_options: dict | None, method: str) -> dict:
    return dict((method_options or {}).get(method, {}))


# ---------------------------------------------------------------- sanity check

def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of a flattened map, ties sharing their average rank (as scipy's rankdata)."""
    _, inverse, counts = np.unique(a.ravel(), return_inverse=True, return_counts=True)
    average = np.cumsum(counts) - (counts - 1) / 2.0  # (U,) mean rank of each distinct value
    return average[inverse.ravel()]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation of two maps; 0.0 when either is constant (a flat map says nothing)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = math.sqrt(float((ra * ra).sum()) * float((rb * rb).sum()))
    return 0.0 if den == 0 else float((ra * rb).sum() / den)


@torch.no_grad()
def randomise_layer(layer: nn.Module, seed: int) -> None:
    """PyTorch's default init range, uniform(+-1/sqrt(fan_in)), drawn from a private generator
    so the result is reproducible and the caller's global RNG stream is untouched."""
    g = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(layer.weight[0].numel())
    for p in (layer.weight, layer.bias):
        if p is not None:
            p.copy_(torch.empty(p.shape).uniform_(-bound, bound, generator=g))


@dataclass
class Sanity:
    steps: tuple[str, ...]             # "original", then each layer as it is randomised (cumulative)
    correlations: dict[str, np.ndarray]  # method -> Spearman rho per step (1.0 at "original")
    target: int
    figure: Figure
    maps: dict[str, list[np.ndarray]] | None = None  # method -> map per step, when keep_maps


def sanity_check(model: nn.Module, x, target: int | None = None, methods=None,
                 layers=RANDOMISE_ORDER, seed: int = 0, method_options: dict | None = None,
                 keep_maps: bool = False) -> Sanity:
    """Cascading randomisation on a deep copy of `model` (the caller's weights are never touched).

    The target stays fixed at the original model's class. `methods` default: those whose record says
    `sanity` (not occlusion: ~a hundred forwards per map, times eleven layers). `method_options` maps a
    method name to its options, e.g. {"integrated_gradients": {"steps": 16}}.
    """
    methods = _methods(methods, sanity=True)
    net = copy.deepcopy(model).eval()
    x = as_batch(net, x)  # (1, 3, H, W)
    if target is None:
        target = predicted_class(net, x)
    maps = {m: [attribute_map(net, x, target, m, **_options(method_options, m))] for m in methods}
    for i, layer in enumerate(layers):
        randomise_layer(net.param_layer(layer), seed + i)
        for m in methods:
            maps[m].append(attribute_map(net, x, target, m, **_options(method_options, m)))
    steps = ("original",) + tuple(layers)
    rho = {m: np.array([spearman(maps[m][0], h) for h in maps[m]]) for m in methods}
    return Sanity(steps, rho, int(target), sanity_figure(steps, rho), maps if keep_maps else None)


def sanity_figure(steps, correlations: dict[str, np.ndarray]) -> Figure:
    fig = new_figure(7.0, 4.0)
    ax = fig.add_subplot()
    for m, r in correlations.items():
        ax.plot(range(len(steps)), r, marker="o", label=m)
    ax.set_xticks(range(len(steps)), steps, rotation=45)
    ax.set_ylim(-0.25, 1.05)
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("randomised down to (cumulative)")
    ax.set_ylabel("Spearman rank correlation with original")
    ax.set_title("Cascading randomisation: a meaningful map should fall")
    ax.legend(fontsize="small")
    return fig


# ---------------------------------------------------------------- faithfulness

def _auc(fractions: np.ndarray, p: np.ndarray) -> float:
    """Trapezoid area under p over [0, 1]; in [0, 1] because p is a probability."""
    return float(((p[1:] + p[:-1]) / 2 * np.diff(fractions)).sum())


@torch.inference_mode()
def perturbation_curve(model: nn.Module, x: torch.Tensor, heatmap: np.ndarray, target: int, steps: int,
                       batch_size: int, insert: bool, baseline: torch.Tensor) -> np.ndarray:
    """Target probability after deleting (or inserting) the top k/steps of pixels, k = 0..steps.

    All steps+1 images are built as one (steps+1, 3, H, W) batch and forwarded `batch_size` at a time.
    """
    h, w = heatmap.shape
    order = torch.from_numpy(np.argsort(-heatmap.ravel(), kind="stable")).to(x.device)  # (H*W,) best first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=x.device)                           # (H*W,) pixel -> rank
    counts = torch.round(torch.linspace(0, h * w, steps + 1, device=x.device))           # (S+1,) pixels changed
    mask = (rank.view(1, 1, h, w) < counts.view(-1, 1, 1, 1)).float()                    # (S+1, 1, H, W)
    start, end = (baseline, x) if insert else (x, baseline)
    probs = []
    for i in range(0, steps + 1, batch_size):
        m = mask[i:i + batch_size]                                                        # (b, 1, H, W)
        imgs = start * (1 - m) + end * m                                                  # (b, 3, H, W)
        probs.append(model(imgs).softmax(dim=1)[:, target].float().cpu())
    return torch.cat(probs).numpy()


@dataclass
class Faithfulness:
    fractions: np.ndarray                 # (steps+1,) share of pixels removed / inserted
    deletion: dict[str, float]            # method -> AUC (lower is better)
    insertion: dict[str, float]           # method -> AUC (higher is better)
    curves: dict[str, tuple[np.ndarray, np.ndarray]]  # method -> (deletion probs, insertion probs)
    target: int
    figure: Figure


def faithfulness(model: nn.Module, x, target: int | None = None, methods=None, steps: int = 20,
                 batch_size: int = 32, baseline: str = "zero", method_options: dict | None = None,
                 maps: dict[str, np.ndarray] | None = None) -> Faithfulness:
    """Deletion / insertion AUC per method (default: every registered one). Pass `maps` (method -> heatmap)
    to reuse maps already shown.

    `baseline` is what replaces a pixel: "zero" (the dataset-mean colour in normalised space)
    or "blur" (a heavy box blur of the image, closer to the data distribution).
    """
    methods = _methods(methods)
    model.eval()
    x = as_batch(model, x)  # (1, 3, H, W)
    if target is None:
        target = predicted_class(model, x)
    if baseline == "zero":
        base = torch.zeros_like(x)
    elif baseline == "blur":
        k = max(3, (x.shape[-1] // 8) | 1)
        base = torch.nn.functional.avg_pool2d(x, k, stride=1, padding=k // 2, count_include_pad=False)  # (1, 3, H, W)
    else:
        raise ValueError(f"unknown baseline {baseline!r}; choose 'zero' or 'blur'")
    fractions = np.linspace(0.0, 1.0, steps + 1)
    deletion, insertion, curves = {}, {}, {}
    for m in methods:
        heat = (maps or {}).get(m)
        if heat is None:
            heat = attribute_map(model, x, target, m, **_options(method_options, m))
        d = perturbation_curve(model, x, heat, target, steps, batch_size, insert=False, baseline=base)
        i = perturbation_curve(model, x, heat, target, steps, batch_size, insert=True, baseline=base)
        deletion[m], insertion[m], curves[m] = _auc(fractions, d), _auc(fractions, i), (d, i)
    return Faithfulness(fractions, deletion, insertion, curves, int(target),
                        faithfulness_figure(fractions, curves, deletion, insertion))


def faithfulness_figure(fractions, curves, deletion, insertion) -> Figure:
    fig = new_figure(10.0, 4.0)
    ax_d, ax_i = fig.subplots(1, 2, sharey=True)
    for m, (d, i) in curves.items():
        ax_d.plot(fractions, d, label=f"{m} ({deletion[m]:.3f})")
        ax_i.plot(fractions, i, label=f"{m} ({insertion[m]:.3f})")
    ax_d.set_title("Deletion: lower AUC is better")
    ax_i.set_title("Insertion: higher AUC is better")
    for ax in (ax_d, ax_i):
        ax.set_xlabel("share of pixels, most important first")
        ax.legend(fontsize="small")
    ax_d.set_ylabel("target probability")
    return fig
