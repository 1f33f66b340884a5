"""Which pixels made the network say what it said: attribution maps, thin over Captum.

Two entry points:

- `explain(model, image, target, method)` - one Captum method per call, chosen by name from
  `METHODS` (viz.methods: one record per method, its small function and what lists show of it;
  Captum's one-call-shape idea).
- `panel(model, x)` - the explain tab in ONE forward and ONE backward: top-5, every layer's
  activation, saliency and Grad-CAM all come from the same pass (architecture flow 1).
  Captum's methods run their own passes; give `explain` the panel's `target` so it does not
  spend one more forward finding the top-1 class.

Every heatmap is an (H, W) float32 numpy array at the input's size and is >= 0, because the
overlays show "how much", not "which way":
- gradient methods (saliency, smoothgrad, guided_backprop, integrated_gradients): absolute
  value, then the maximum over the three colour channels (Simonyan et al. 2014);
- Grad-CAM: ReLU of the weighted conv5 map, as in Selvaraju et al. 2017 - only evidence *for*
  the class - then bilinear upsampling to the input;
- occlusion: ReLU of the score drop, i.e. only regions whose removal hurts the class.

An untrained (random-weight) model explains nothing: its maps are noise that still looks like
edges. `explain` and `panel` take `trained=False` to put `UNTRAINED_NOTICE` in the result's
`notice` field for the UI to show; `trained=None` (default) leaves it to the caller.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from alexnet.errors import OptionError
from alexnet.images import display_image, preprocess
from alexnet.model import CONV_LAYERS
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD
from viz.maps import CAM_LAYER, PASS_BATCH, _abs_max, _cam, _relu_cam  # noqa: F401  (CAM_LAYER, PASS_BATCH: re-exported)
from viz.methods import METHODS, check_method
from viz.plots import overlay

UNTRAINED_NOTICE = ("These weights are untrained (random): the map shows the architecture's response to "
                    "edges and colour, not evidence the network learned. Load a checkpoint to read it.")


def attribute_map(model: nn.Module, x: torch.Tensor, target: int, method: str = "saliency", **options) -> np.ndarray:
    """The bare map: (1, 3, H, W) normalised input -> (H, W) float32 >= 0. No overlay, no timing."""
    fn = METHODS[check_method(method)].fn
    try:
        m = fn(model, x.detach(), int(target), **options)
    except TypeError as e:
        if "unexpected keyword" in str(e):
            raise TypeError(f"{method}: {e} (see {fn.__module__}.{fn.__name__} for its options)") from e
        raise
    return m.float().cpu().numpy()


# ---------------------------------------------------------------- inputs

def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _norm_meta(model: nn.Module, meta: dict | None) -> tuple[int, tuple, tuple]:
    """input_size, mean, std from a checkpoint sidecar; the model's spec size and ImageNet stats otherwise."""
    meta = meta or {}
    size = int(meta.get("input_size") or model.spec.input_size)
    return size, tuple(meta.get("mean") or IMAGENET_MEAN), tuple(meta.get("std") or IMAGENET_STD)


def as_batch(model: nn.Module, image, meta: dict | None = None) -> torch.Tensor:
    """A PIL image (or anything `alexnet.images.open_image` takes) or a normalised tensor
    (3, H, W) / (1, 3, H, W) -> the (1, 3, H, W) float batch on the model's device."""
    if isinstance(image, torch.Tensor):
        x = image.unsqueeze(0) if image.dim() == 3 else image  # (1, 3, H, W)
        if x.dim() != 4 or x.shape[0] != 1 or x.shape[1] != 3:
            raise ValueError(f"expected a normalised (3, H, W) or (1, 3, H, W) tensor, got {tuple(image.shape)}")
    else:
        size, mean, std = _norm_meta(model, meta)
        x = preprocess(image, size, mean, std)  # (1, 3, S, S)
    return x.detach().float().to(_device(model))


def class_index(classes: list[str], value) -> int | None:
    """A class given by a visitor -> its index: a name (any case), an index (int or digits), or
    None / "" for "the predicted class". Anything else is an OptionError naming valid choices."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        i = int(text)
        if 0 <= i < len(classes):
            return i
        raise OptionError(f"class index {i} is out of range: this model has classes 0-{len(classes) - 1}")
    lower = [c.lower() for c in classes]
    if text.lower() in lower:
        return lower.index(text.lower())
    raise OptionError(f"this model has no class {text!r}; it knows {len(classes)} classes, e.g. "
                      f"{', '.join(classes[:5])}")


def predicted_class(model: nn.Module, x: torch.Tensor) -> int:
    """Top-1 class: one inference forward. Pass `target=` (e.g. a Panel's) to skip it."""
    with torch.inference_mode():
        return int(model(x).argmax(dim=1)[0])


def overlay_image(x: torch.Tensor, heatmap: np.ndarray, mean=IMAGENET_MEAN, std=IMAGENET_STD, alpha: float = 0.5) -> Image.Image:
    """The normalised input, un-normalised, with `heatmap` blended on top."""
    return overlay(display_image(x, mean, std), heatmap, alpha=alpha)


# ---------------------------------------------------------------- explain: one method, one call

@dataclass
class Explanation:
    """One method's answer. Unpacks as `heatmap, overlay = explain(...)`."""
    heatmap: np.ndarray          # (H, W) float32 >= 0 at the input's size
    overlay: Image.Image         # heatmap over the un-normalised input
    target: int
    method: str
    seconds: float
    notice: str | None = None    # UNTRAINED_NOTICE when the caller said trained=False

    def __iter__(self):
        return iter((self.heatmap, self.overlay))


def explain(model: nn.Module, image, target: int | None = None, method: str = "saliency", *,
            meta: dict | None = None, trained: bool | None = None, contrast: int | None = None,
            **options) -> Explanation:
    """Explain `target` (default: the predicted class) for one image with one method.

    `image` is a PIL image (preprocessed with `meta` = {input_size, mean, std}, defaulting to the
    model's spec size and ImageNet statistics) or an already-normalised tensor. `contrast`, a
    second class, explains "why `target` and not `contrast`": the method attributes the logit
    difference target - contrast. `options` go to the method (e.g. steps=, samples=, seed=,
    window=, stride=, layer= for Grad-CAM). Puts the model in eval mode.
    """
    check_method(method)
    t0 = time.perf_counter()
    model.eval()
    x = as_batch(model, image, meta)
    _, mean, std = _norm_meta(model, meta)
    if METHODS[method].takes_norm:              # LRP's input box: pixel values 0..1 under this normalisation
        options = {"mean": mean, "std": std, **options}
    if target is None:
        target = predicted_class(model, x)
    if contrast is None:
        heat = attribute_map(model, x, target, method, **options)
    else:
        heat = attribute_map(Contrast(model, int(target), int(contrast)), x, 0, method, **options)
    return Explanation(heat, overlay_image(x, heat, mean, std), int(target), method,
                       time.perf_counter() - t0, UNTRAINED_NOTICE if trained is False else None)


class Contrast(nn.Module):
    """One output, logit[a] - logit[b]: any method then explains "why a and not b".

    It wraps the model without copying it; `tap` passes through so Grad-CAM finds its layers.
    """

    def __init__(self, model: nn.Module, a: int, b: int):
        super().__init__()
        self.model, self.a, self.b = model, a, b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)                                     # (B, K)
        return (logits[:, self.a] - logits[:, self.b])[:, None]    # (B, 1)

    def tap(self, name: str) -> nn.Module:
        return self.model.tap(name)


def layer_cams(model: nn.Module, x: torch.Tensor, target: int, layers=CONV_LAYERS,
               contrast: int | None = None) -> dict[str, np.ndarray]:
    """Grad-CAM at several layers from ONE forward and ONE backward: {layer: (h, w) float32 >= 0}
    at each layer's own resolution (conv1 55x55 ... conv5 13x13 at 227), before any upsampling."""
    model.eval()
    x = x.detach().requires_grad_(True)     # a graph even when every parameter is frozen
    logits, acts = model(x, return_activations=True)           # (1, K), {layer: (1, C, h, w)}
    score = logits[0, target] - (logits[0, contrast] if contrast is not None else 0.0)
    grads = torch.autograd.grad(score, [acts[name] for name in layers])
    out = {}
    for name, g in zip(layers, grads):
        cam = F.relu(_cam(g, acts[name]))[0, 0]                    # (1, 1, h, w) -> (h, w)
        out[name] = cam.float().cpu().numpy()
    return out


# ---------------------------------------------------------------- panel: one forward, one backward

@dataclass
class Panel:
    """Everything the explain tab shows, from one forward and one backward pass."""
    logits: torch.Tensor                 # (K,) detached
    probs: torch.Tensor                  # (K,) softmax of logits
    top5: tuple[list[int], list[float]]  # (class indices, probabilities), best first; fewer if K < 5
    acts: dict[str, torch.Tensor] | None  # layer -> detached activation (1, C, h, w) or (1, F); None: not kept
    saliency: np.ndarray | None          # (H, W) float32 >= 0: |d logit / d x| max over channels; None: not asked for
    gradcam: np.ndarray                  # (H, W) float32 >= 0: ReLU(sum_c mean(grad_c) * conv5_c), upsampled
    target: int                          # the class both maps explain
    seconds: float
    notice: str | None = field(default=None)


def panel(model: nn.Module, x, target: int | None = None, *, meta: dict | None = None,
          trained: bool | None = None, contrast: int | None = None, saliency: bool = True,
          keep_acts: bool = True) -> Panel:
    """The explain tab in one forward (recording every layer) and one backward of the target logit.

    The backward is `torch.autograd.grad` w.r.t. the input and conv5's activation together: the
    same thing `retain_grad` on conv5 would give, without computing weight gradients nobody
    reads or leaving `.grad` on the caller's parameters. The results equal Captum's Saliency
    (abs) and LayerGradCam (ReLU, bilinear upsampling) - tests/test_attribution.py checks that.
    """
    return panels(model, as_batch(model, x, meta), [target], meta=meta, trained=trained, contrasts=[contrast],
                  saliency=saliency, keep_acts=keep_acts)[0]


def panels(model: nn.Module, x: torch.Tensor, targets=None, *, meta: dict | None = None,
           trained: bool | None = None, contrasts=None, saliency: bool = True, keep_acts: bool = True) -> list[Panel]:
    """`panel` for B normalised images (B, 3, H, W) at once: one forward and one backward for all.

    The backward differentiates the SUM of each image's own score; in eval mode nothing mixes
    images in a batch (LRN normalises across channels, dropout is off), so image i's gradients
    are exactly those of its own score, as if it had run alone. `targets` / `contrasts`: one
    class (or None: the predicted one / no contrast) per image. `saliency=False`: Grad-CAM only, and the
    backward stops at conv5 instead of going on through conv4..conv1 to the pixels (about half the cost:
    147 against 281 ms for 8 images on 2 cores); the panels' saliency is None. `keep_acts=False`: no copy of
    every layer's activation per image (3 MB each; 10 ms for 8) for a caller that shows only the maps.
    """
    t0 = time.perf_counter()
    model.eval()  # dropout off: a map must not change between two clicks
    _, mean, std = _norm_meta(model, meta)
    x = x.detach().float().to(_device(model)).requires_grad_(saliency)   # (B, 3, H, W)
    n = x.shape[0]
    targets = list(targets) if targets is not None else [None] * n
    contrasts = list(contrasts) if contrasts is not None else [None] * n
    logits, acts = model(x, return_activations=True)   # (B, K), {layer: (B, ...)}
    conv5 = acts[CAM_LAYER]                            # (B, C, h, w)
    probs = logits.detach().softmax(dim=1)             # (B, K)
    targets = [int(probs[i].argmax()) if t is None else int(t) for i, t in enumerate(targets)]
    rows = torch.arange(n)
    score = logits[rows, targets].sum()                # "why target (and not contrast)", summed over images
    with_c = [i for i, c in enumerate(contrasts) if c is not None]
    if with_c:
        score = score - logits[with_c, [int(contrasts[i]) for i in with_c]].sum()
    if saliency:
        g_x, g_c = torch.autograd.grad(score, (x, conv5))
        sal = _abs_max(g_x).float().cpu().numpy()                  # (B, H, W): |grad| max over channels
    else:
        (g_c,), sal = torch.autograd.grad(score, (conv5,)), [None] * n
    gradcam = _relu_cam(_cam(g_c, conv5), tuple(x.shape[-2:])).float().cpu().numpy()   # (B, 1, h, w) -> (B, H, W)
    seconds = time.perf_counter() - t0
    out = []
    for i in range(n):
        p, top = probs[i].topk(min(5, probs.shape[1]))
        out.append(Panel(
            logits=logits.detach()[i].clone(), probs=probs[i].clone(), top5=(top.tolist(), p.tolist()),
            # clones: a cached image's activations must not keep the whole batch's tensors alive
            acts={k: v.detach()[i:i + 1].clone() for k, v in acts.items()} if keep_acts else None,
            saliency=sal[i], gradcam=gradcam[i], target=targets[i], seconds=seconds,
            notice=UNTRAINED_NOTICE if trained is False else None))
    return out
