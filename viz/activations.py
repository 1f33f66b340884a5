"""What each layer makes of one image: every named activation from one forward pass, as maps and bars.

`record` runs the model once; every other function takes its `acts` dict, so the app can
reuse that single pass for the top-5, the maps, the bars and attribution instead of running
the network once per view. Titles carry the layer's shape ("conv1 96x55x55") read from the
tensors themselves, which `alexnet.shapes.layer_table` predicts row for row.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from alexnet.errors import OptionError
from alexnet.model import FC_LAYERS, LAYERS
from viz.plots import barh, figure_to_image, new_figure, overlay

SPATIAL_LAYERS = tuple(n for n in LAYERS if n not in FC_LAYERS)   # conv1..conv5 and the pools
GRID_COLS = 4            # map tiles per row
TILE_INCHES = 2.2        # side of one map tile
MAP_CMAP = "viridis"     # maps without an input image: perceptually even, readable in grey
BAR_INCHES = 0.3         # height of one bar in fc_bars


def record(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """One forward pass in eval mode without gradients -> (logits, {layer: activation}), all on the CPU.

    Eval mode matters: in training mode dropout would make fc6/fc7 differ on every call.
    The model's own mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits, acts = model(x, return_activations=True)
    finally:
        model.train(was_training)
    return logits.detach().cpu(), {k: v.detach().cpu() for k, v in acts.items()}


def _check(acts: dict, layer: str, kinds: tuple[str, ...]) -> torch.Tensor:
    if layer not in kinds:
        raise OptionError(f"{layer!r} is not one of {', '.join(kinds)}")
    if layer not in acts:
        raise OptionError(f"no activation recorded for {layer!r}")
    return acts[layer]


def shape_title(layer: str, tensor: torch.Tensor) -> str:
    """'conv1 96x55x55' / 'fc7 4096': the layer name and its per-image shape (batch dimension dropped)."""
    per_image = tensor.shape[-1:] if layer in FC_LAYERS else tensor.shape[-3:]
    return f"{layer} " + "x".join(str(v) for v in per_image)


def channel_means(acts: dict, layer: str) -> np.ndarray:
    """(C,) mean activation of each channel of a conv/pool layer, first image of the batch."""
    a = _check(acts, layer, SPATIAL_LAYERS)
    a = a[0] if a.dim() == 4 else a                   # (1, C, H, W) -> (C, H, W)
    return a.float().mean(dim=(1, 2)).numpy()         # (C, H, W) -> (C,)


def _as_rgb(image) -> np.ndarray:
    """PIL image or (H, W, 3) uint8 array -> (H, W, 3) uint8."""
    return np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)


def layer_maps(acts: dict, layer: str, image=None, top_n: int = 8, channel: int | None = None) -> dict:
    """Feature maps of one conv/pool layer: the top-N channels by mean activation, or one chosen channel.

    Returns title ('conv1 96x55x55'), channels (indices shown), means (their mean activations),
    maps ((n, H, W) float32) and image (a titled PIL grid). With `image` (the crop the network
    saw, PIL or (H, W, 3) uint8) each map is overlaid on it, otherwise maps share one colour
    scale so their strengths compare.
    """
    a = _check(acts, layer, SPATIAL_LAYERS)
    a = a[0] if a.dim() == 4 else a                   # (1, C, H, W) -> (C, H, W)
    title = shape_title(layer, a)
    means = channel_means(acts, layer)
    if channel is not None:
        if not 0 <= channel < a.shape[0]:
            raise IndexError(f"{title} has channels 0-{a.shape[0] - 1}; {channel} is out of range")
        channels = np.array([channel])
    else:
        channels = np.argsort(-means, kind="stable")[:max(1, top_n)]
    maps = a[torch.from_numpy(channels)].float().numpy()   # (C, H, W) -> (n, H, W)

    cols = min(GRID_COLS, len(channels))
    rows = -(-len(channels) // cols)
    fig = new_figure(cols * TILE_INCHES, rows * TILE_INCHES + 0.5)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    rgb = None if image is None else _as_rgb(image)
    lo, hi = float(maps.min()), float(maps.max())
    for ax, c, m in zip(axes, channels, maps):
        if rgb is not None:
            ax.imshow(overlay(rgb, m))
        else:
            ax.imshow(m, cmap=MAP_CMAP, vmin=lo, vmax=hi, interpolation="nearest")
        ax.set_title(f"channel {c} (mean {means[c]:.2f})", fontsize=9)
    for ax in axes:
        ax.set_axis_off()
    how = f"channel {channels[0]}" if channel is not None else f"top {len(channels)} channels by mean activation"
    fig.suptitle(f"{title}: {how}")
    return dict(title=title, channels=channels, means=means[channels], maps=maps, image=figure_to_image(fig))


def fc_units(acts: dict, layer: str = "fc7", top_k: int = 20) -> dict:
    """The top-k units of a fully connected layer: title ('fc7 4096'), units, values, active (count > 0)."""
    a = _check(acts, layer, FC_LAYERS)
    a = (a[0] if a.dim() == 2 else a).float()         # (1, C) -> (C,)
    top = torch.topk(a, min(top_k, a.numel()))
    return dict(title=shape_title(layer, a), units=top.indices.numpy(), values=top.values.numpy(),
                active=int((a > 0).sum()), size=a.numel())


def fc_bars(acts: dict, layer: str = "fc7", top_k: int = 20, names: list[str] | None = None) -> Image.Image:
    """Bar chart of the top-k units of fc6/fc7 (or fc8 with class `names`), with how many units fired."""
    u = fc_units(acts, layer, top_k)
    labels = [names[i] if names is not None else f"unit {i}" for i in u["units"]]
    fig = barh(labels, u["values"], title=f"{u['title']}: top {len(labels)} units",
               xlabel=f"activation ({u['active']:,} of {u['size']:,} units > 0)",
               height=BAR_INCHES * len(labels) + 1.2)
    return figure_to_image(fig)
