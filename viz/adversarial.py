"""Fool the network: an invisible change to a photo that changes the network's answer.

A change of a few steps out of 255 in each pixel value - less than the noise in a phone photo, and
invisible when the two pictures stand side by side - can turn the network's answer from "daisy" to
"tulips". The change is not random: it is computed from the network's own gradient, which says for
every pixel value which way to move it to lower the score of the answer (or raise a chosen class).
Each nudge alone means nothing to us, but tens of thousands of them, all pushed the way the network
is sensitive, add up. So the network does not see the flower the way we do: its answer also rests on
faint, spread-out pixel patterns that people cannot see, not only on the petals and colours we would
name. Networks can be trained to resist this, but the 2012 AlexNet was not, and neither is almost
any image classifier that was not trained for it (Szegedy et al. 2014; Goodfellow et al. 2015).

Units. The visitor picks eps in *pixel steps* k: every pixel value may move by at most k/255 (an
L-infinity ball), k = 0..MAX_EPS. The attacks run on `InPixels`, the model with its normalisation
(and optionally its centre crop) inside, so Captum's FGSM / PGD see images in [0, 1] and clip to
that range. Results are uint8, and the top-5 "after" is the network's answer for that uint8
picture. Attack `pixels(photo, S)` (the 256x256 picture `preprocess` crops from) with
`input_size=S`: the saved PNG, uploaded again, is then cropped to the very pixels attacked and gets
the same answer (a 227x227 PNG is enlarged to 256 first, and that resampling mostly undoes the change).
"""
from __future__ import annotations

import math
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from captum.robust import FGSM, PGD
from torch import nn

from alexnet.errors import OptionError
from alexnet.images import PREPARE_SIZE, center_crop, normalize, open_image, to_uint8
from viz.maps import _gradcam

LESSON = " ".join((__doc__ or "").split("\n\n")[1].split())   # the paragraph above, on one line, for the app
METHODS = ("fgsm", "pgd")       # one gradient step / `steps` projected steps (Goodfellow 2015 / Madry 2018)
MAX_EPS = 16                    # pixel steps; 16/255 is already faintly visible as grain, so no point going further
MAX_STEPS = 100                 # PGD iterations; each is one forward + one backward
LEVELS = 255                    # a uint8 pixel value: 0..255, so one step is 1/255 in [0, 1] units


class InPixels(nn.Module):
    """The model taking (B, 3, H, W) images in [0, 1]: the centre `input_size` crop (None: none)
    and (x - mean) / std happen inside, so an epsilon of k/255 is k pixel steps whatever the
    checkpoint's normalisation. Holds no tensors of its own; `tap` passes through to the model."""

    def __init__(self, model: nn.Module, mean, std, input_size: int | None = None):
        super().__init__()
        self.model, self.mean, self.std = model, tuple(map(float, mean)), tuple(map(float, std))
        self.input_size = input_size

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.input_size is None else center_crop(x, self.input_size)

    def forward(self, x01: torch.Tensor) -> torch.Tensor:
        return self.model(normalize(self.crop(x01), self.mean, self.std))     # (B, K) logits

    def tap(self, name: str) -> nn.Module:
        return self.model.tap(name)


@contextmanager
def _eval(model: nn.Module):
    """Eval mode (dropout off: the attack must see the network the visitor sees) for the duration,
    then every module's own flag back. Parameters are left alone: Captum differentiates with
    torch.autograd.grad w.r.t. the input only, which writes no .grad and needs no requires_grad
    change (flipping that on a model a training thread shares would break its training)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for m, was in modes:
            m.training = was


def _margin(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """(B, K) logits, (B,) classes -> (B,): logsumexp of the other logits minus the class's logit.

    Cross-entropy is softplus(this), and softplus increases, so the *sign* of the gradient - all
    that FGSM and L-inf PGD use - is the same; but this one is not shrunk by a saturated softmax
    (for a 99.9999 %-sure photo, cross-entropy's gradient is the logits' times ~1e-6, so many
    pixels fall under Captum's 1e-6 "treat as zero" threshold and FGSM would leave them alone)."""
    z_y = logits.gather(1, label[:, None])[:, 0]                                    # (B,)
    others = logits.scatter(1, label[:, None], float("-inf"))                     # (B, K), class masked out
    return torch.logsumexp(others, dim=1) - z_y


class _SeededPGD(PGD):
    """Captum's PGD with its random start drawn from `generator`, on the 1/255 grid.

    Captum draws the start with torch.rand_like (the process-wide RNG that concurrent requests
    share); here the same uniform L-inf start comes from the caller's generator, as whole pixel
    steps, so with whole-step step sizes every iterate stays on the uint8 grid."""

    def __init__(self, forward_func, loss_func, generator: torch.Generator):
        super().__init__(forward_func, loss_func, lower_bound=0.0, upper_bound=1.0)
        self.generator = generator

    def _random_point(self, center, radius, norm, mask):
        k = int(round(radius * LEVELS))
        u = torch.randint(-k, k + 1, center.shape, generator=self.generator, device=self.generator.device)
        return center + u.to(center) / LEVELS * mask                    # Captum clips it to [0, 1] after


def pixels(source, input_size: int) -> torch.Tensor:
    """A photo (anything alexnet.images.open_image takes) -> (1, 3, P, P) in [0, 1], P =
    max(256, input_size): the square `preprocess` takes its centre crop from, not normalised."""
    return to_uint8(open_image(source), max(PREPARE_SIZE, input_size)).float().div(LEVELS).unsqueeze(0)


# ---------------------------------------------------------------- checks: the visitor's mistakes

def _whole(value, name: str, lo: int, hi: int) -> int:
    """An integer lo..hi (a slider's 2.0 is fine), else an OptionError saying the range."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    if not ok or not float(value).is_integer() or not lo <= int(value) <= hi:
        raise OptionError(f"{name} must be a whole number from {lo} to {hi}, not {value!r}")
    return int(value)


def _options(method, steps, step_pixels) -> tuple[str, int]:
    """The attack's name and its number of steps (FGSM: 1), checked; step_pixels only checked."""
    m = str(method).strip().lower()
    if m not in METHODS:
        raise OptionError(f"unknown attack {method!r}; choose one of {', '.join(METHODS)}")
    if step_pixels is not None:
        _whole(step_pixels, "step_pixels", 1, MAX_EPS)
    return m, (1 if m == "fgsm" else _whole(steps, "steps", 1, MAX_STEPS))


def _grid(model: nn.Module, x01: torch.Tensor, input_size: int | None) -> torch.Tensor:
    """(1, 3, H, W) in [0, 1] -> the same picture as whole pixel values 0..255 (float), on the
    model's device: what a uint8 image of it holds, and so what the visitor sees."""
    if not isinstance(x01, torch.Tensor) or x01.dim() != 4 or x01.shape[:2] != (1, 3):
        raise ValueError(f"expected a (1, 3, H, W) image tensor in [0, 1], got {getattr(x01, 'shape', type(x01))}")
    x = x01.detach().float()
    if x.min() < -1e-6 or x.max() > 1 + 1e-6:
        raise ValueError(f"expected values in [0, 1] (un-normalised), got {float(x.min()):.3f}..{float(x.max()):.3f}")
    if input_size is not None and not 0 < input_size <= min(x.shape[-2:]):
        raise ValueError(f"cannot take an input_size={input_size} crop from a {tuple(x.shape[-2:])} image")
    device = next(model.parameters(), torch.empty(0)).device
    return torch.round(x.clamp(0, 1) * LEVELS).to(device)


# ---------------------------------------------------------------- the attack

@dataclass
class Attack:
    """One attack's result; every image is uint8 and every number was computed on those uint8s."""
    original: np.ndarray             # (H, W, 3) uint8: x01 on the uint8 grid (all of it, crop or not)
    adversarial: np.ndarray          # (H, W, 3) uint8: the changed photo (save it; it gives top5_after)
    change: np.ndarray               # (H, W, 3) uint8: 128 + change_scale * (adversarial - original); grey = none
    change_scale: int                # how many times `change` amplifies the difference
    top5_before: list[tuple[int, float]]   # (class, probability), best first; fewer if K < 5
    top5_after: list[tuple[int, float]]
    flipped: bool                    # untargeted: top-1 changed; targeted: top-1 is the target
    linf_pixels: int                 # the largest change of any pixel value, in steps of 1/255 (<= eps_pixels)
    cam_before: np.ndarray           # (H, W) float32 >= 0: Grad-CAM (conv5) of cam_before_class on the original
    cam_after: np.ndarray            # (H, W) float32 >= 0: Grad-CAM of cam_after_class on the adversarial
    cam_before_class: int            # the original top-1
    cam_after_class: int             # the target if one was given, else the adversarial top-1
    method: str
    eps_pixels: int
    target: int | None
    steps: int                       # gradient steps taken: 1 for FGSM
    seconds: float

    @property
    def top1_before(self) -> int:
        return self.top5_before[0][0]

    @property
    def top1_after(self) -> int:
        return self.top5_after[0][0]


def _perturb(net: InPixels, x_int: torch.Tensor, eps: int, method: str, label: int, targeted: bool,
             steps: int, step_pixels: int, generator: torch.Generator | None) -> torch.Tensor:
    """Captum's attack on the [0, 1] picture, rounded back to whole pixel values within +-eps."""
    x0 = x_int / LEVELS                                                            # (1, 3, H, W) in [0, 1]
    y = torch.tensor([label], device=x0.device)
    # With a crop, only the pixels the network sees may change (PGD's random start included).
    mask = None if net.input_size is None else _inside(net, x0)
    pgd = dict(radius=eps / LEVELS, step_size=step_pixels / LEVELS, step_num=steps, target=y,
               targeted=targeted, norm="Linf", mask=mask)
    with warnings.catch_warnings():     # Captum warns each step that it set requires_grad on its own copy
        warnings.filterwarnings("ignore", message="Input Tensor .* did not already require gradients")
        if method == "fgsm":
            adv = FGSM(net, _margin, lower_bound=0.0, upper_bound=1.0).perturb(
                x0, epsilon=eps / LEVELS, target=y, targeted=targeted, mask=mask)
        elif generator is None:                              # no generator: start at the photo, deterministic
            adv = PGD(net, _margin, lower_bound=0.0, upper_bound=1.0).perturb(x0, random_start=False, **pgd)
        else:                                                # a uniform random start from the caller's generator
            adv = _SeededPGD(net, _margin, generator).perturb(x0, random_start=True, **pgd)
    return _on_grid(adv.detach(), x_int, eps)


def _inside(net: InPixels, x: torch.Tensor) -> torch.Tensor:
    """1 on the pixels the network sees (its crop), 0 elsewhere; shaped like x."""
    m = torch.zeros_like(x)
    net.crop(m).fill_(1.0)                  # the crop is a view, so this writes into m
    return m


def _on_grid(adv: torch.Tensor, x_int: torch.Tensor, eps: int) -> torch.Tensor:
    """Back to whole pixel values. FGSM and PGD land on the grid already (whole steps from whole
    values); rounding removes float error, and the clamps keep |delta| <= eps and 0..255 after it."""
    delta = (torch.round(adv * LEVELS) - x_int).clamp(-eps, eps)
    return (x_int + delta).clamp(0, LEVELS)


def _top5(net: InPixels, x_int: torch.Tensor) -> tuple[list[tuple[int, float]], int]:
    """The (class, probability) top-5 of the uint8 picture, and the number of classes K."""
    with torch.no_grad():
        probs = net(x_int / LEVELS).softmax(dim=1)[0]                              # (K,)
    p, i = probs.topk(min(5, probs.numel()))
    return [(int(a), float(b)) for a, b in zip(i.tolist(), p.tolist())], probs.numel()


def _cam(net: InPixels, x_int: torch.Tensor, target: int) -> np.ndarray:
    """Grad-CAM at conv5 of the uint8 picture, (H, W) like the picture: 0 outside the crop, which
    the network never saw. The input needs a graph even if every weight is frozen."""
    x = normalize(net.crop(x_int) / LEVELS, net.mean, net.std).requires_grad_(True)
    out = torch.zeros(x_int.shape[-2:])
    net.crop(out).copy_(_gradcam(net.model, x, target).detach().float().cpu())
    return out.numpy()


def _hwc(x_int: torch.Tensor) -> np.ndarray:
    return x_int[0].permute(1, 2, 0).to(torch.uint8).cpu().numpy()                # (H, W, 3) uint8


def _step(step_pixels: int | None, eps: int, steps: int) -> int:
    """PGD's step in pixel steps; None: ceil(2.5 * eps / steps) (Madry et al.'s rule), so the walk can
    reach the ball's edge and still turn back; at least 1, a whole step, to stay on the uint8 grid."""
    return int(step_pixels) if step_pixels is not None else max(1, math.ceil(2.5 * eps / steps))


def attack(model: nn.Module, x01: torch.Tensor, mean, std, eps_pixels: int, method: str = "fgsm",
           target: int | None = None, steps: int = 10, step_pixels: int | None = None,
           generator: torch.Generator | None = None, input_size: int | None = None) -> Attack:
    """Change the photo by at most `eps_pixels`/255 per pixel value to change the network's answer.

    x01: (1, 3, H, W) in [0, 1] (un-normalised; `mean`/`std` are the checkpoint's). `input_size`:
    the network sees x01's centre crop of that side, and only the crop changes (None: all of x01).
    target None: push away from the current top-1; a class index: pull towards it. PGD takes `steps` steps of
    `step_pixels`/255 (default: see `_step`); FGSM one step of eps_pixels/255. A `generator`
    gives PGD a random start drawn from it, never from torch's global RNG. Leaves the model's
    modes, requires_grad and .grad as it found them.
    """
    t0 = time.perf_counter()
    eps = _whole(eps_pixels, "eps_pixels", 0, MAX_EPS)
    method, steps = _options(method, steps, step_pixels)
    net = InPixels(model, mean, std, input_size)
    x_int = _grid(model, x01, input_size)
    with _eval(model):
        before, k = _top5(net, x_int)
        if target is not None:
            target = _whole(target, "target class", 0, k - 1)
        label, targeted = (before[0][0], False) if target is None else (target, True)
        adv_int = _perturb(net, x_int, eps, method, label, targeted, steps, _step(step_pixels, eps, steps), generator)
        after, _ = _top5(net, adv_int)
        after_class = after[0][0] if target is None else target
        cam_before, cam_after = _cam(net, x_int, before[0][0]), _cam(net, adv_int, after_class)
    delta = (adv_int - x_int).round().to(torch.int16)                              # (1, 3, H, W) whole steps
    scale = 127 // max(eps, 1)                                                     # +-eps spans grey +-127 at most
    change = (128 + scale * delta).clamp(0, 255)
    flipped = after[0][0] != before[0][0] if target is None else after[0][0] == target
    return Attack(_hwc(x_int), _hwc(adv_int), _hwc(change), scale, before, after, bool(flipped),
                  int(delta.abs().max()), cam_before, cam_after, before[0][0], after_class, method, eps,
                  target, steps, time.perf_counter() - t0)


def flip_epsilon(model: nn.Module, x01: torch.Tensor, mean, std, max_eps: int = MAX_EPS, method: str = "fgsm",
                 steps: int = 10, step_pixels: int | None = None, generator: torch.Generator | None = None,
                 input_size: int | None = None) -> int | None:
    """The smallest k in 1..max_eps whose untargeted attack changes the top-1 of the uint8 result,
    or None if none does ("a change of 2/255, invisible, flips it"). Tries k = 1, 2, ... and stops
    at the first flip: FGSM costs one forward + backward and one forward per k tried, PGD `steps`
    of them; PGD's random starts (with a generator) draw from it once per k tried."""
    max_eps = _whole(max_eps, "max_eps", 0, MAX_EPS)
    method, steps = _options(method, steps, step_pixels)
    net = InPixels(model, mean, std, input_size)
    x_int = _grid(model, x01, input_size)
    with _eval(model):
        top1 = _top5(net, x_int)[0][0][0]
        for k in range(1, max_eps + 1):
            adv = _perturb(net, x_int, k, method, top1, False, steps, _step(step_pixels, k, steps), generator)
            if _top5(net, adv)[0][0][0] != top1:
                return k
    return None
