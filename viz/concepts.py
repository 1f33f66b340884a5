"""Which concepts made this decision: conv5's channels ranked by their share in a class's logit.

    shares = channel_shares(model, x, target)            # one forward + one backward
    top_channels(model, x, target, k=6)                  # [(channel, relevance), ...] best first
    argmax, magnitude = semantic_dictionary(acts["conv5"])
    dictionary_picture(argmax, magnitude, icons)         # Distill's "Building Blocks" semantic dictionary
    concept_strip(model, x, target, images, mean, std, 227, icons)   # one row per top channel

A channel's relevance is activation x gradient summed over its positions: sum_yx a_cyx * d logit / d a_cyx,
the first-order Taylor share of each channel in the logit (Simonyan et al. 2013; Olah et al. 2018,
"The Building Blocks of Interpretability", Distill). After conv5 the network is piecewise linear
(ReLU, max pool, average pool, linear layers), so the logit is exactly the shares' sum plus what fc6-fc8's
biases add along the paths this image switches on. The activation is conv5's output after its ReLU.
A channel's map on the photo is the same product, position by position, its positive part upsampled
to the input. Icons of channels come from viz.concept_icons; dataset patches from the one cached
pass `viz.embedding.top_patches` also reads (the per-image maximum and position of every channel).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from alexnet import features as fstore
from alexnet.errors import OptionError
from alexnet.images import center_crop, display_image
from alexnet.model import CONV_LAYERS
from viz.embedding import Geometry, receptive_geometry
from viz.plots import figure_to_image, new_figure, overlay

LAYER = "conv5"
TOP_K = 6              # channels in a strip
PATCHES = 6            # dataset patches per channel in a strip
CELL_PX = 24           # side of one cell of the dictionary picture: 13 cells -> 312 px
BACKGROUND = 255       # a blank cell (no channel fires there) and what weak cells fade into


# ---------------------------------------------------------------- relevance of each channel

@dataclass
class ChannelShares:
    """One image's channel shares in one logit."""
    target: int
    logit: float
    relevance: torch.Tensor     # (C,): sum over positions of activation x gradient
    maps: torch.Tensor          # (C, h, w): activation x gradient at each position
    activation: torch.Tensor    # (C, h, w): the layer's output after its ReLU


def channel_shares(model: nn.Module, x: torch.Tensor, target: int, layer: str = LAYER) -> ChannelShares:
    """x (1, 3, H, W) normalised -> every channel's share in logit `target`: one forward, one backward
    (gradients w.r.t. the activation only, in eval mode; the model's mode and .grad are left alone)."""
    if layer not in CONV_LAYERS:
        raise OptionError(f"{layer!r} is not a conv layer; choose one of {', '.join(CONV_LAYERS)}")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            logits, acts = model(x[:1], return_activations=True)
            if not 0 <= int(target) < logits.shape[1]:
                raise OptionError(f"class {target} is out of range: the model has {logits.shape[1]} classes")
            a = acts[layer]                                                     # (1, C, h, w), in the graph
            (grad,) = torch.autograd.grad(logits[0, int(target)], [a])          # (1, C, h, w)
    finally:
        model.train(was_training)
    maps = (a * grad).detach()[0]                                               # (C, h, w)
    return ChannelShares(int(target), float(logits.detach()[0, int(target)]), maps.sum(dim=(1, 2)), maps, a.detach()[0])


def channel_relevance(model: nn.Module, x: torch.Tensor, target: int, layer: str = LAYER) -> torch.Tensor:
    """(C,) each channel's activation x gradient of logit `target`, summed over positions: the first-order
    Taylor share of each channel in the logit."""
    return channel_shares(model, x, target, layer).relevance


def _ranked(relevance: torch.Tensor, k: int) -> list[tuple[int, float]]:
    r = relevance.double().cpu().numpy()
    order = np.lexsort((np.arange(len(r)), -r))[:max(0, k)]    # largest first, ties by channel number
    return [(int(c), float(r[c])) for c in order]


def top_channels(model: nn.Module, x: torch.Tensor, target: int, k: int = TOP_K, layer: str = LAYER,
                 shares: ChannelShares | None = None) -> list[tuple[int, float]]:
    """The k channels with the largest relevance for `target`, as (channel, relevance), descending.
    `shares` (from `channel_shares`) saves recomputing them."""
    shares = shares if shares is not None else channel_shares(model, x, target, layer)
    return _ranked(shares.relevance, k)


def channel_heatmap(shares: ChannelShares, channel: int, size: tuple[int, int]) -> torch.Tensor:
    """(H, W) >= 0: the channel's activation x gradient, positive part, bilinearly upsampled to `size`."""
    m = F.relu(shares.maps[int(channel)])[None, None]                           # (1, 1, h, w)
    return F.interpolate(m, size=tuple(size), mode="bilinear", align_corners=False)[0, 0]


# ---------------------------------------------------------------- the semantic dictionary

def semantic_dictionary(acts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, C, h, w) or (C, h, w) activations -> ((h, w) strongest channel, (h, w) its activation).
    Where no channel fires (all zero after the ReLU) the magnitude is 0 and the cell is drawn blank."""
    a = acts[0] if acts.dim() == 4 else acts
    magnitude, argmax = a.detach().float().max(dim=0)                          # (h, w) each
    return argmax, magnitude.clamp(min=0)


def icon_cell(icons: torch.Tensor, channel: int, cell_px: int) -> np.ndarray:
    """(cell_px, cell_px, 3) uint8: icon `channel` of (C, 3, S, S) uint8, resized by PIL (antialiased bilinear)."""
    icon = Image.fromarray(icons[int(channel)].permute(1, 2, 0).numpy())
    return np.asarray(icon.resize((cell_px, cell_px), Image.BILINEAR))


def dictionary_picture(argmax: torch.Tensor, magnitude: torch.Tensor, icons: torch.Tensor,
                       cell_px: int = CELL_PX, background: int = BACKGROUND) -> Image.Image:
    """Each position's strongest channel drawn as its icon, in an (h * cell_px) square grid, the icon's
    opacity its magnitude over the picture's largest (the strongest cell is the icon itself, a weak
    one fades into the background, a silent one is blank)."""
    h, w = argmax.shape
    out = np.full((h * cell_px, w * cell_px, 3), background, dtype=np.float64)
    top = float(magnitude.max())
    cells: dict[int, np.ndarray] = {}
    for y in range(h):
        for x in range(w):
            m = float(magnitude[y, x])
            if m <= 0 or top <= 0:
                continue
            c = int(argmax[y, x])
            if c not in cells:
                cells[c] = icon_cell(icons, c, cell_px).astype(np.float64)
            alpha = m / top
            block = out[y * cell_px:(y + 1) * cell_px, x * cell_px:(x + 1) * cell_px]
            block[:] = (1 - alpha) * background + alpha * cells[c]
    return Image.fromarray(np.round(out).clip(0, 255).astype(np.uint8))


# ---------------------------------------------------------------- top dataset patches, many channels at once

def _max_table(model, images_uint8, mean, std, input_size, layer, batch_size, device, cache_key, progress, cache):
    """Every channel's maximum over positions and where, per image: ONE batched pass, stored under the
    same key and in the same arrays as viz.embedding.top_patches' pass, so either one's pass serves both."""
    def record(m, x):
        flat = m(x, return_activations=True)[1][layer].flatten(2)    # (B, C, H*W)
        values, where = flat.max(dim=2)                              # (B, C) each
        return {"values": values, "where": where.to(torch.int32)}
    key = None
    if cache:
        key = (f"{layer}max-{cache_key}" if cache_key else fstore.store_key(
            f"{layer}max", fstore.model_hash(model), fstore.data_hash(images_uint8), mean, std, input_size))
    table, _ = fstore.cached(key, len(images_uint8), lambda: fstore.dataset_pass(
        model, images_uint8, input_size, mean, std, record=record, batch_size=batch_size, device=device,
        progress=progress), progress=progress)
    return table


def _crop(image_chw: torch.Tensor, geo: Geometry, y: int, x: int, fill: np.ndarray) -> tuple[np.ndarray, tuple]:
    """The receptive field of unit (y, x) in the model's input crop: (rf, rf, 3) uint8, `fill` where it
    overhangs the input (the zero padding), and its clipped box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box = geo.box(y, x)
    img = center_crop(image_chw, geo.input_size).permute(1, 2, 0).numpy()        # (S, S, 3)
    patch = np.empty((geo.rf, geo.rf, 3), dtype=np.uint8)
    patch[:] = fill
    oy, ox = y0 - (geo.start + y * geo.jump), x0 - (geo.start + x * geo.jump)       # clipped-off margin
    patch[oy:oy + y1 - y0, ox:ox + x1 - x0] = img[y0:y1, x0:x1]
    return patch, box


def top_patches_many(model: nn.Module, images_uint8: torch.Tensor, mean, std, input_size: int, units,
                     k: int = 9, layer: str = LAYER, batch_size: int = 64, device=None,
                     cache_key: str | None = None, progress=None, cache: bool = True) -> dict[int, dict]:
    """{unit: viz.embedding.top_patches(..., unit) for the same arguments}, from one pass for all units.

    Each value has patches (k, rf, rf, 3) uint8, boxes (k, 4), values (k,), indices (k,), positions (k, 2),
    layer, unit and rf, exactly as `top_patches` returns them (one patch per image, best first).
    """
    geo = receptive_geometry(model, layer, input_size)
    table = _max_table(model, images_uint8, mean, std, input_size, layer, batch_size, device, cache_key,
                       progress, cache)
    n_units = table["values"].shape[1]
    fill = np.clip(np.round(np.asarray(mean, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    out = {}
    for unit in units:
        unit = int(unit)
        if not 0 <= unit < n_units:
            raise OptionError(f"{layer} has units 0..{n_units - 1}, not {unit}")
        v = table["values"][:, unit]
        order = np.lexsort((np.arange(len(v)), -v))[:k]                       # highest first, ties by image
        positions = np.array([divmod(int(table["where"][i, unit]), geo.size) for i in order],
                             dtype=np.int64).reshape(-1, 2)
        crops = [_crop(images_uint8[int(i)], geo, int(y), int(x), fill) for i, (y, x) in zip(order, positions)]
        out[unit] = dict(patches=np.stack([p for p, _ in crops]) if crops else np.empty((0, geo.rf, geo.rf, 3), np.uint8),
                         boxes=np.array([b for _, b in crops], dtype=np.int64).reshape(-1, 4),
                         values=v[order].astype(np.float32), indices=order.astype(np.int64), positions=positions,
                         layer=layer, unit=unit, rf=geo.rf)
    return out


# ---------------------------------------------------------------- one row per top channel

@dataclass
class ConceptRow:
    channel: int
    relevance: float
    heatmap: np.ndarray         # (H, W) float32 >= 0, on the input crop
    overlay: Image.Image        # the heatmap over the photo the network saw
    patches: np.ndarray         # (n, rf, rf, 3) uint8: the dataset's patches that excite the channel most
    patch_images: np.ndarray    # (n,) their images' indices in the dataset
    icon: Image.Image | None    # the channel's feature visualisation, or None without icons


def concept_strip(model: nn.Module, x: torch.Tensor, target: int, images_uint8: torch.Tensor, mean, std,
                  input_size: int, icons: torch.Tensor | None = None, k: int = TOP_K, patches: int = PATCHES,
                  shares: ChannelShares | None = None, **pass_options) -> list[ConceptRow]:
    """For the k channels with the largest share in logit `target` of x (1, 3, H, W): each one's map on the
    photo, its top dataset patches (`top_patches_many`, one pass for all k, cached) and its icon.
    `pass_options` go to `top_patches_many` (batch_size, device, cache_key, progress, cache)."""
    shares = shares if shares is not None else channel_shares(model, x, target)
    top = _ranked(shares.relevance, k)
    many = top_patches_many(model, images_uint8, mean, std, input_size, [c for c, _ in top], patches,
                            **pass_options) if top else {}
    photo = display_image(x, mean, std)                                             # (H, W, 3) uint8
    rows = []
    for c, r in top:
        heat = channel_heatmap(shares, c, tuple(x.shape[-2:])).numpy().astype(np.float32)
        icon = None if icons is None else Image.fromarray(icons[c].permute(1, 2, 0).numpy())
        rows.append(ConceptRow(c, r, heat, overlay(photo, heat, vmax=float(heat.max()) or None),
                               many[c]["patches"], many[c]["indices"], icon))
    return rows


def strip_picture(rows: list[ConceptRow], title: str = "") -> Image.Image:
    """The strip drawn: per row the map on the photo, the icon, then the dataset patches."""
    n_patch = max((len(r.patches) for r in rows), default=0)
    cols = 2 + n_patch
    fig = new_figure(1.3 * cols, 1.35 * max(1, len(rows)) + 0.4)
    axes = fig.subplots(max(1, len(rows)), cols, squeeze=False)
    for row, ax in zip(rows, axes):
        ax[0].imshow(row.overlay)
        ax[0].set_title(f"ch {row.channel}: {row.relevance:+.3g}", fontsize=8)
        if row.icon is not None:
            ax[1].imshow(row.icon)
        for a, p in zip(ax[2:], row.patches):
            a.imshow(p)
    for a in axes.ravel():
        a.set_axis_off()
    if title:
        fig.suptitle(title)
    return figure_to_image(fig)
