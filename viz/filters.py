"""conv1 as pictures: every filter, the conv2 group it feeds, and how colour-specific it is.

The paper (section 6.1, Figure 3) saw that the kernels learned on one GPU were largely
colour-agnostic and those on the other largely colour-specific. The split exists because
conv2 is a grouped convolution: each group of conv2 reads only its own contiguous block of
conv1 channels, so the two blocks can specialise. This module makes that claim checkable on
any checkpoint: a score per filter, a grid and a histogram per group, and group names that
come from the scores (a rank test), never from the position.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from matplotlib.figure import Figure, SubFigure
from PIL import Image

from viz.plots import figure_to_image, image_grid, new_figure

RGB = 3                           # conv1 reads an RGB image
GRID_COLS = 8                     # filters per row in each group's grid
DPI = 100                         # viz.plots.new_figure's default: mosaics are sized for it
SCORE_BINS = np.linspace(0.0, 1.0, 21)   # colour scores live in [0, 1]
CHANCE_SCORE = 2.0 / 3.0          # expected score of i.i.d. random weights: 2 of the 3 colour directions are off grey
SPLIT_Z = 3.0                     # a group is named only when its scores sit >= 3 standard errors from chance
GROUP_COLOURS = ("#d1495b", "#3b6fb6", "#66a182", "#edae49")
NO_GROUPS, MIXED = "no groups", "mixed"
SPECIFIC, AGNOSTIC = "colour-specific", "colour-agnostic"


# ----------------------------------------------------------------------------- numbers

def conv1_weight(model_or_weight) -> torch.Tensor:
    """A model (its conv1), a tensor or an array -> (N, 3, kh, kw) float32 on the CPU, detached."""
    if hasattr(model_or_weight, "param_layer"):
        w = model_or_weight.param_layer("conv1").weight
    elif isinstance(model_or_weight, (torch.Tensor, np.ndarray)):
        w = torch.as_tensor(model_or_weight)
    else:
        raise TypeError(f"expected an AlexNet or a conv1 weight tensor, not {type(model_or_weight).__name__}")
    if w.dim() != 4 or w.shape[1] != RGB:
        raise ValueError(f"conv1 weights must be (N, {RGB}, kh, kw), not {tuple(w.shape)}")
    return w.detach().float().cpu()


def colour_score(weight) -> np.ndarray:
    """One score per filter in [0, 1]: the share of its energy that lies off the grey axis.

    Every pixel of a filter is an RGB weight vector. Its projection on the grey axis
    (1, 1, 1)/sqrt(3) is the channel mean - the part that responds to brightness alone;
    the remainder is chromatic (red-green and blue-yellow opponency). The score is
    sum((w - mean_c w)^2) / sum(w^2): 0 for a grey filter, 1 for a purely
    colour-opponent one, 2/3 for a filter that reads a single channel and, in
    expectation, for i.i.d. random weights. Chosen because it is an energy fraction
    with a physical meaning, invariant to the filter's scale and sign, and defined
    (0) for an all-zero filter. On the BVLC conv1 it separates the halves with AUC 0.89.
    """
    w = conv1_weight(weight).double().numpy()
    n = w.shape[0]
    f = w.reshape(n, RGB, -1)                      # (N, 3, kh, kw) -> (N, 3, kh*kw)
    grey = f.mean(axis=1, keepdims=True)           # (N, 1, kh*kw): the brightness part of each pixel
    off = ((f - grey) ** 2).sum(axis=(1, 2))       # (N,)
    total = (f ** 2).sum(axis=(1, 2))              # (N,)
    return np.divide(off, total, out=np.zeros(n), where=total > 0)


def split_auc(scores, labels) -> float:
    """Mann-Whitney AUC: P(score of a labelled filter > score of an unlabelled one), ties count 1/2."""
    s = np.asarray(scores, dtype=np.float64).ravel()
    pos = np.asarray(labels, dtype=bool).ravel()
    if s.shape != pos.shape:
        raise ValueError(f"{s.size} scores but {pos.size} labels")
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the AUC needs both labelled and unlabelled items")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]   # 1-based ranks, ties share their average
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _auc_z(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard errors between an AUC and chance (0.5), under the no-difference null."""
    se = np.sqrt((n_pos + n_neg + 1) / (12.0 * n_pos * n_neg))
    return (auc - 0.5) / se


def split_blocks(n: int, groups: int) -> list[np.ndarray]:
    """Indices 0..n-1 cut into `groups` contiguous blocks: how a grouped conv2 reads conv1's channels."""
    if groups < 1 or n % groups:
        raise ValueError(f"{n} filters cannot be split into {groups} equal groups")
    return list(np.arange(n).reshape(groups, n // groups))   # (n,) -> (groups, n // groups)


def groups_of(model) -> list[np.ndarray]:
    """Indices of the conv1 filters feeding each group of conv2 (one block when conv2 is not grouped)."""
    return split_blocks(model.param_layer("conv1").out_channels, model.param_layer("conv2").groups)


def group_labels(scores, blocks: list[np.ndarray]) -> list[dict]:
    """Name each group from its scores: its AUC against the other filters, tested against chance.

    A group is "colour-specific" when its scores rank above the rest by >= SPLIT_Z standard
    errors, "colour-agnostic" when below, and "mixed" otherwise (as for random weights, or
    groups too small to tell). Swapping the blocks swaps the names.
    """
    scores = np.asarray(scores, dtype=np.float64)
    out = []
    for idx in blocks:
        d = dict(indices=np.asarray(idx), scores=scores[idx], median=float(np.median(scores[idx])), auc=None, label=NO_GROUPS)
        if len(blocks) > 1:
            inside = np.zeros(scores.size, dtype=bool)
            inside[idx] = True
            d["auc"] = split_auc(scores, inside)
            z = _auc_z(d["auc"], int(inside.sum()), int((~inside).sum()))
            d["label"] = SPECIFIC if z >= SPLIT_Z else AGNOSTIC if z <= -SPLIT_Z else MIXED
        out.append(d)
    return out


def filter_tiles(weight) -> np.ndarray:
    """(N, kh, kw, 3) uint8: each filter scaled by its own largest |weight|, zero drawn mid-grey.

    Symmetric scaling keeps zero at grey, so a tile's tint is the filter's colour
    preference rather than an artefact of a min-max stretch.
    """
    w = conv1_weight(weight).numpy()
    peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1)       # (N, 3*kh*kw) -> (N,)
    w = w / np.where(peak > 0, peak, 1.0)[:, None, None, None]  # each filter in [-1, 1]
    return np.round(127.5 + 127.5 * w).clip(0, 255).astype(np.uint8).transpose(0, 2, 3, 1)  # (N, 3, kh, kw) -> (N, kh, kw, 3)


def filter_response(acts_conv1, index: int) -> np.ndarray:
    """One conv1 filter's activation map (H, W) for the first image, from `record`'s acts or acts['conv1']."""
    a = acts_conv1["conv1"] if isinstance(acts_conv1, dict) else acts_conv1
    a = a[0] if a.dim() == 4 else a                               # (1, N, H, W) -> (N, H, W)
    if not 0 <= index < a.shape[0]:
        raise IndexError(f"conv1 has {a.shape[0]} filters; index {index} is out of range")
    return a[index].detach().float().cpu().numpy()


# ----------------------------------------------------------------------------- pictures

def _mosaic(tiles: np.ndarray, upscale: int, cols: int = GRID_COLS) -> np.ndarray:
    """(n, kh, kw, 3) tiles -> one grid, each weight drawn as upscale x upscale screen pixels."""
    grid = image_grid(tiles, cols=min(cols, len(tiles)), pad=1, pad_value=255)
    return grid.repeat(upscale, axis=0).repeat(upscale, axis=1)     # (H, W, 3) -> (H*u, W*u, 3)


def _group_title(g: dict, k: int) -> str:
    idx = g["indices"]
    if g["label"] == NO_GROUPS:
        return f"all {idx.size} filters: no groups\n(conv2 reads every conv1 channel)"
    return f"group {k}: filters {idx[0]}-{idx[-1]}\n{g['label']} (median score {g['median']:.2f})"


def _draw_grids(fig: Figure | SubFigure, tiles: np.ndarray, groups: list[dict], upscale: int) -> None:
    axes = fig.subplots(1, len(groups), squeeze=False)[0]
    for k, (ax, g) in enumerate(zip(axes, groups)):
        ax.imshow(_mosaic(tiles[g["indices"]], upscale), interpolation="nearest")
        ax.set_title(_group_title(g, k), fontsize=10)
        ax.set_axis_off()


def _draw_histogram(fig: Figure | SubFigure, groups: list[dict]) -> None:
    ax = fig.add_subplot()
    for k, g in enumerate(groups):
        colour = GROUP_COLOURS[k % len(GROUP_COLOURS)]
        name = "all filters" if g["label"] == NO_GROUPS else f"group {k}: {g['label']}"
        ax.hist(g["scores"], bins=SCORE_BINS, alpha=0.6, color=colour, label=f"{name} (median {g['median']:.2f})")
        ax.axvline(g["median"], color=colour, linestyle="--")
    ax.axvline(CHANCE_SCORE, color="0.4", linestyle=":", label="random weights (2/3)")
    ax.set_xlim(SCORE_BINS[0], SCORE_BINS[-1])
    ax.set_xlabel("colour score: share of filter energy off the grey axis (0 grey, 1 pure colour)")
    ax.set_ylabel("filters")
    if len(groups) == 2:
        ax.set_title(f"Do the groups differ? AUC {max(g['auc'] for g in groups):.2f} (0.5 = not at all, 1 = fully)")
    ax.legend(fontsize=8, loc="upper center")


def _grid_size(tiles: np.ndarray, groups: list[dict], upscale: int) -> tuple[float, float]:
    """Figure inches that show each mosaic at about one image pixel per screen pixel, plus room for titles."""
    h, w = _mosaic(tiles[groups[0]["indices"]], upscale).shape[:2]
    return len(groups) * w / DPI + 0.4, h / DPI + 0.8


@dataclass
class FilterView:
    """Everything the filter tab shows: per-group facts, and ready-to-show images."""
    groups: list[dict]        # per group: indices, scores, median, auc (vs the rest), label
    scores: np.ndarray        # (N,) colour score of every filter
    grid: Image.Image         # the filter grids, one per group, titled with their labels
    histogram: Image.Image    # score histograms, one per group
    tiles: np.ndarray         # (N, kh, kw, 3) uint8, as `filter_tiles`
    upscale: int

    @property
    def figure(self) -> Figure:
        """Grids above the histogram in one figure (for saving or a single image slot)."""
        gw, gh = _grid_size(self.tiles, self.groups, self.upscale)
        fig = new_figure(max(gw, 7.0), gh + 3.2)
        top, bottom = fig.subfigures(2, 1, height_ratios=(gh, 3.2))
        _draw_grids(top, self.tiles, self.groups, self.upscale)
        _draw_histogram(bottom, self.groups)
        return fig


def filter_view(model_or_weight, groups: int | None = None, upscale: int = 4) -> FilterView:
    """conv1 grids and score histograms per conv2 group; groups default to the model's (1 for a bare tensor)."""
    w = conv1_weight(model_or_weight)
    if groups is not None:
        blocks = split_blocks(w.shape[0], groups)
    elif hasattr(model_or_weight, "param_layer"):
        blocks = groups_of(model_or_weight)
    else:
        blocks = split_blocks(w.shape[0], 1)
    scores = colour_score(w)
    info = group_labels(scores, blocks)
    tiles = filter_tiles(w)
    grid_fig = new_figure(*_grid_size(tiles, info, upscale))
    _draw_grids(grid_fig, tiles, info, upscale)
    hist_fig = new_figure(7.0, 3.2)
    _draw_histogram(hist_fig, info)
    return FilterView(info, scores, figure_to_image(grid_fig), figure_to_image(hist_fig), tiles, upscale)


def compare(before, after, upscale: int = 3) -> dict:
    """Two checkpoints' conv1 side by side (e.g. before/after fine-tuning) and how far each filter moved.

    Returns image (PIL), change ((N,) relative L2 change ||after - before|| / ||before||, inf
    where a zero filter became non-zero), score_shift (mean colour score after minus before),
    and both score vectors. Bars are coloured by conv2 group when `before` is a model.
    """
    wb, wa = conv1_weight(before), conv1_weight(after)
    if wb.shape != wa.shape:
        raise ValueError(f"conv1 shapes differ: {tuple(wb.shape)} before, {tuple(wa.shape)} after")
    n = wb.shape[0]
    diff = (wa - wb).reshape(n, -1).norm(dim=1).double().numpy()   # (N, 3, kh, kw) -> (N, 3*kh*kw) -> (N,)
    base = wb.reshape(n, -1).norm(dim=1).double().numpy()          # (N, 3, kh, kw) -> (N, 3*kh*kw) -> (N,)
    change = np.where(base > 0, diff / np.where(base > 0, base, 1.0), np.where(diff > 0, np.inf, 0.0))
    sb, sa = colour_score(wb), colour_score(wa)
    shift = float(sa.mean() - sb.mean())

    mosaics = {"before": _mosaic(filter_tiles(wb), upscale, 2 * GRID_COLS),
               "after": _mosaic(filter_tiles(wa), upscale, 2 * GRID_COLS)}
    mh, mw = mosaics["before"].shape[:2]
    fig = new_figure(max(2 * mw / DPI + 0.4, 7.0), mh / DPI + 3.6)
    top, bottom = fig.subfigures(2, 1, height_ratios=(mh / DPI + 0.6, 3.0))
    for ax, (k, m) in zip(top.subplots(1, 2), mosaics.items()):
        ax.imshow(m, interpolation="nearest")
        ax.set_title(f"{k}: mean colour score {(sb if k == 'before' else sa).mean():.2f}", fontsize=10)
        ax.set_axis_off()
    ax = bottom.add_subplot()
    finite = change[np.isfinite(change)]
    ceiling = finite.max() if finite.size and finite.max() > 0 else 1.0   # an infinite change is drawn at the tallest bar
    blocks = groups_of(before) if hasattr(before, "param_layer") else split_blocks(n, 1)
    for k, idx in enumerate(blocks):
        ax.bar(idx, np.minimum(change[idx], ceiling), color=GROUP_COLOURS[k % len(GROUP_COLOURS)],
               label=f"group {k}" if len(blocks) > 1 else None)
    if len(blocks) > 1:
        ax.legend(fontsize=8)
    ax.set_xlabel("conv1 filter")
    ax.set_ylabel("relative L2 change")
    ax.set_title(f"median change {np.median(change):.1%}; colour score shift {shift:+.3f}")
    return dict(image=figure_to_image(fig), change=change, score_shift=shift, scores_before=sb, scores_after=sa)
