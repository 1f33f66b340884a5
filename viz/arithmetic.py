"""One unit's value, computed in front of the student: CNN Explainer's "click a number, see its arithmetic".

    steps = trace(model, x)                         # every layer's input and output for one photo
    a = unit_arithmetic(model, steps, "conv2", channel=200, y=13, x=13)
    a.value        # == the network's own activation there (a test checks it to 1e-4)
    a.sentence     # "sum of 1,200 products + bias = 4.21 -> ReLU -> 4.21"
    a.box          # the unit's receptive field on the input photo, (x0, y0, x1, y1) in pixels
    a.terms        # the largest products written out; a.rest is the sum of the others
                   # (the page writes all of it in the visitor's language: app.lesson_words.unit_words)

Layers, in the paper's order: conv1, lrn1, pool1, conv2, lrn2, pool2, conv3, conv4, conv5, pool5,
fc6, fc7, fc8 (`STEPS`; the LRN layers are named here because a student clicks them too). A conv
unit is a dot product of its kernel with the input patch it reads (for a grouped layer, only its
group's half of the channels), plus a bias, then the ReLU; a pool unit is the largest value of its
window; an LRN unit divides its input by (k + alpha/n * sum of the squares of its n neighbouring
channels) ** beta; an fc unit is a dot product with the whole previous layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from alexnet.model import AlexNet, LocalResponseNorm

TOP_TERMS = 8          # products written out; the rest are summed into one number


@dataclass
class Step:
    name: str                  # conv1, lrn1, pool1, ..., fc8
    kind: str                  # conv | lrn | pool | fc
    module: nn.Module          # the Conv2d / LocalResponseNorm / MaxPool2d / Linear
    input: torch.Tensor        # (C, H, W) or (D,) for fc: what the unit reads
    output: torch.Tensor       # (C, H, W) or (D,): after the ReLU for conv and fc6/fc7
    relu: bool                 # conv and fc6/fc7: a ReLU follows (fc8 has none)


@dataclass
class Arithmetic:
    layer: str
    kind: str
    channel: int
    y: int
    x: int
    value: float                                # the unit's output, computed here
    sentence: str                               # the whole computation in one line
    box: tuple[int, int, int, int] | None       # receptive field on the input, (x0, y0, x1, y1) inclusive
    terms: list[tuple[str, float, float, float]] = field(default_factory=list)   # (where, input, weight, product)
    rest: float = 0.0                           # the sum of the products not in `terms`
    n_terms: int = 0
    bias: float = 0.0
    pre_activation: float | None = None         # conv / fc: sum + bias, before the ReLU
    reads_channels: tuple[int, int] | None = None   # conv: the input channels it reads [start, stop)
    patch: np.ndarray | None = None             # conv: (C_in, k, k) input patch; pool: (k, k) window
    kernel: np.ndarray | None = None            # conv: (C_in, k, k) its weights
    winner: tuple[int, int] | None = None       # pool: (row, col) of the largest value in the window
    neighbours: list[tuple[int, float]] = field(default_factory=list)   # lrn: (channel, its input value)
    activation: str | None = None               # conv / fc6 / fc7: "ReLU" or "tanh" after the sum; fc8: None
    groups: int = 1                             # conv: the layer's groups (2 for the paper's grouped layers)


def _names(model: AlexNet) -> list[tuple[str, str, int, str]]:
    """(name, kind, index, sequential) of every step with arithmetic, in forward order."""
    out, conv, lrn, pool = [], 0, 0, 0
    for i, m in enumerate(model.features):
        if isinstance(m, nn.Conv2d):
            conv += 1
            out.append((f"conv{conv}", "conv", i, "features"))
        elif isinstance(m, LocalResponseNorm):
            lrn += 1
            out.append((f"lrn{lrn}", "lrn", i, "features"))
        elif isinstance(m, nn.MaxPool2d):
            pool += 1
            out.append((("pool1", "pool2", "pool5")[pool - 1], "pool", i, "features"))
    fc = 5
    for i, m in enumerate(model.classifier):
        if isinstance(m, nn.Linear):
            fc += 1
            out.append((f"fc{fc}", "fc", i, "classifier"))
    return out


STEPS = ("conv1", "lrn1", "pool1", "conv2", "lrn2", "pool2", "conv3", "conv4", "conv5", "pool5", "fc6", "fc7", "fc8")


def trace(model: AlexNet, x: torch.Tensor) -> dict[str, Step]:
    """Every step's input and output for one normalised photo x (1, 3, S, S), from forward hooks.

    Run with autograd on, so no layer works in place (alexnet.model's inference shortcuts) and each
    recorded tensor is exactly what the next layer read.
    """
    names = _names(model)
    was_training = model.training
    model.eval()                                  # no dropout: fc7 reads fc6's ReLU as it is
    seen: dict[str, list] = {}
    handles = []
    for name, kind, i, seq in names:
        mod = getattr(model, seq)[i]
        handles.append(mod.register_forward_hook(
            lambda m, inp, out, name=name: seen.__setitem__(name, [inp[0][0].detach().clone(), out[0].detach().clone()])))
    try:
        with torch.enable_grad():
            model(x.detach())
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    steps = {}
    for name, kind, i, seq in names:
        mod = getattr(model, seq)[i]
        inp, out = seen[name]
        relu = kind == "conv" or (kind == "fc" and name != "fc8")
        if relu:
            out = out.clamp_min(0) if model.spec.activation == "relu" else out.tanh()   # the activation after it
        steps[name] = Step(name, kind, mod, inp, out, relu)
    return steps


def _box(steps: dict[str, Step], layer: str, y: int, x: int, size: int):
    """The input pixels unit (y, x) of `layer` depends on: walk the spatial layers back to the image."""
    spatial = [s for s in steps.values() if s.kind in ("conv", "pool")]
    upto = [s for s in spatial if STEPS.index(s.name) <= STEPS.index(layer)]
    y0 = y1 = y
    x0 = x1 = x
    for s in reversed(upto):
        k, st, p = (_kernel(s.module), _stride(s.module), _pad(s.module))
        y0, y1 = y0 * st - p, y1 * st - p + k - 1
        x0, x1 = x0 * st - p, x1 * st - p + k - 1
    clip = lambda v: int(min(max(v, 0), size - 1))   # noqa: E731
    return clip(x0), clip(y0), clip(x1), clip(y1)


def _kernel(m) -> int:
    k = m.kernel_size
    return k[0] if isinstance(k, tuple) else k


def _stride(m) -> int:
    s = m.stride
    return s[0] if isinstance(s, tuple) else s


def _pad(m) -> int:
    p = m.padding
    return p[0] if isinstance(p, tuple) else p


def _top_terms(where: list[str], inputs: np.ndarray, weights: np.ndarray, top: int):
    """The `top` largest products by size, written out, and the sum of the others (float64)."""
    products = inputs.astype(np.float64) * weights.astype(np.float64)
    order = np.argsort(-np.abs(products))
    shown = order[:top]
    terms = [(where[i], float(inputs[i]), float(weights[i]), float(products[i])) for i in shown]
    return terms, float(products[order[top:]].sum()), float(products.sum())


def _activation(model: AlexNet, v: float) -> float:
    return max(v, 0.0) if model.spec.activation == "relu" else float(np.tanh(v))


def unit_arithmetic(model: AlexNet, steps: dict[str, Step], layer: str, channel: int, y: int = 0, x: int = 0,
                    top: int = TOP_TERMS) -> Arithmetic:
    """How unit (channel, y, x) of `layer` is computed from its input, with the numbers of this photo."""
    if layer not in steps:
        raise ValueError(f"no arithmetic for {layer!r}; choose one of {', '.join(steps)}")
    s = steps[layer]
    size = int(steps["conv1"].input.shape[-1])
    act = "ReLU" if model.spec.activation == "relu" else "tanh"
    if s.kind == "fc":
        w = s.module.weight[channel].detach().numpy()
        inp = s.input.numpy()
        where = [f"{_prev(layer)}[{i}]" for i in range(len(inp))]
        terms, rest, total = _top_terms(where, inp, w, top)
        bias = float(s.module.bias[channel].detach())
        pre = total + bias
        value = _activation(model, pre) if s.relu else pre
        tail = f" -> {act} -> {value:.4g}" if s.relu else ""
        return Arithmetic(layer, "fc", channel, 0, 0, value,
                          f"sum of {len(inp):,} products + bias = {pre:.4g}{tail}", None, terms, rest, len(inp),
                          bias, pre, activation=act if s.relu else None)
    box = _box(steps, layer, y, x, size)
    m = s.module
    if s.kind == "conv":
        k, st, p = _kernel(m), _stride(m), _pad(m)
        groups, c_in = m.groups, m.in_channels // m.groups
        g = channel // (m.out_channels // groups)
        lo = g * c_in
        padded = torch.nn.functional.pad(s.input, (p, p, p, p))                      # (C, H + 2p, W + 2p)
        patch = padded[lo:lo + c_in, y * st:y * st + k, x * st:x * st + k].numpy()   # (c_in, k, k)
        kernel = m.weight[channel].detach().numpy()                                 # (c_in, k, k)
        where = [f"ch{lo + c} ({r},{q})" for c in range(c_in) for r in range(k) for q in range(k)]
        terms, rest, total = _top_terms(where, patch.reshape(-1), kernel.reshape(-1), top)
        bias = float(m.bias[channel].detach())
        pre = total + bias
        value = _activation(model, pre)
        half = f", reading input channels {lo}-{lo + c_in - 1} only (group {g + 1} of {groups})" if groups > 1 else ""
        return Arithmetic(layer, "conv", channel, y, x, value,
                          f"sum of {patch.size:,} products + bias = {pre:.4g} -> {act} -> {value:.4g}{half}", box,
                          terms, rest, patch.size, bias, pre, (lo, lo + c_in), patch, kernel,
                          activation=act, groups=groups)
    if s.kind == "pool":
        k, st = _kernel(m), _stride(m)
        window = s.input[channel, y * st:y * st + k, x * st:x * st + k].numpy()     # (k, k)
        r, q = np.unravel_index(int(np.argmax(window)), window.shape)
        value = float(window[r, q])
        return Arithmetic(layer, "pool", channel, y, x, value,
                          f"the largest of the {window.size} values in its {k}x{k} window = {value:.4g}", box,
                          patch=window, winner=(int(r), int(q)))
    # LRN, as torch computes it: n // 2 channels before c and (n - 1) // 2 after, zero beyond the edges
    n, alpha, beta, kk = m.size, m.alpha, m.beta, m.k
    a = s.input[:, y, x].double().numpy()                                          # (C,)
    around = [j for j in range(channel - n // 2, channel + (n - 1) // 2 + 1) if 0 <= j < len(a)]
    squares = float(sum(a[j] ** 2 for j in around))
    denom = (kk + alpha / n * squares) ** beta
    value = float(a[channel] / denom)
    return Arithmetic(layer, "lrn", channel, y, x, value,
                      f"{a[channel]:.4g} / ({kk:g} + {alpha:g}/{n} x {squares:.4g}) ^ {beta:g} = {value:.4g}", box,
                      neighbours=[(j, float(a[j])) for j in around])


def _prev(layer: str) -> str:
    return {"fc6": "pool5", "fc7": "fc6", "fc8": "fc7"}[layer]


def network_value(steps: dict[str, Step], layer: str, channel: int, y: int = 0, x: int = 0) -> float:
    """The network's own output at that unit, as the hooks recorded it (what `unit_arithmetic` must equal)."""
    out = steps[layer].output
    return float(out[channel] if out.dim() == 1 else out[channel, y, x])


# ---------------------------------------------------------------- what the page shows

def unit_at(steps: dict[str, Step], layer: str, px: float, py: float) -> tuple[int, int]:
    """The unit (y, x) of spatial `layer` whose receptive field is centred nearest input pixel (px, py)."""
    out = steps[layer].output
    if out.dim() == 1:
        return 0, 0
    size = int(steps["conv1"].input.shape[-1])

    def nearest(n: int, p: float, axis: int) -> int:
        centres = []
        for u in range(n):
            box = _box(steps, layer, u, u, size)
            centres.append((box[axis] + box[axis + 2]) / 2)
        return int(np.argmin([abs(c - p) for c in centres]))
    return nearest(out.shape[1], py, 1), nearest(out.shape[2], px, 0)


def picture(photo, a: Arithmetic, mean, std):
    """The photo with the unit's receptive field boxed; for conv1, its 11x11 input patch and kernel beside it."""
    from PIL import Image, ImageDraw
    img = photo.convert("RGB").copy()
    if a.box is not None:
        ImageDraw.Draw(img).rectangle(a.box, outline=(255, 40, 40), width=2)
    if a.layer != "conv1" or a.patch is None:
        return img
    scale = 10
    patch = a.patch * np.asarray(std)[:, None, None] + np.asarray(mean)[:, None, None]     # un-normalised, 0-1
    kernel = (a.kernel - a.kernel.min()) / max(float(np.ptp(a.kernel)), 1e-12)            # its own 0-1 scale
    tiles = [Image.fromarray((np.clip(t, 0, 1).transpose(1, 2, 0) * 255).astype(np.uint8)).resize(
        (t.shape[-1] * scale, t.shape[-2] * scale), Image.NEAREST) for t in (patch, kernel)]
    side = tiles[0].height
    canvas = Image.new("RGB", (img.width + 2 * (side + 10), max(img.height, side)), "white")
    canvas.paste(img, (0, 0))
    for i, t in enumerate(tiles):
        canvas.paste(t, (img.width + 10 + i * (side + 10), 0))
    return canvas
