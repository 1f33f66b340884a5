"""What one unit is looking for: an image optimised to excite it (feature visualisation).

Regularised activation maximisation after Olah, Mordvintsev & Schubert 2017, "Feature
Visualization" (Distill), as in their Lucid library. Gradient ascent on raw pixels finds
high-frequency noise that excites a unit without looking like anything, so the image is
steered towards natural-looking ones in three ways:

- a Fourier parametrisation: the optimised numbers are the image's spectrum, scaled by 1/f so
  every frequency learns at a similar rate (natural images have ~1/f spectra), instead of
  letting the fine, noisy frequencies win;
- colour decorrelation: the spectrum's three channels are mapped to RGB by the square root of
  ImageNet's colour covariance (Lucid's matrix), then a sigmoid keeps pixels in [0, 1];
- transformation robustness: every step sees a randomly shifted, scaled and rotated copy, so
  only patterns that survive small moves are reinforced.

The objective is the unit's *pre-ReLU* mean activation (read from the Conv2d/Linear itself, as
Lucid does where it can): after the ReLU a unit that starts negative has no gradient at all.
For fc8 the unit is a class and the objective its logit; pools are read after their max.
All randomness comes from `generator`; the model's mode, parameters and their `.grad` are left
as they were, and gradients are taken only w.r.t. the image (`torch.autograd.grad`).
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from alexnet.errors import OptionError
from alexnet.model import LAYERS
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD

# Defaults: ~7 s for a conv unit and ~13 s for an fc8 class on 2 idle CPU cores with the real-size
# paper model (fc6/fc7's 54M weights are read twice a step); see tests/test_feature_vis.py.
STEPS = 256        # Adam steps: half Lucid's 512, hence twice its learning rate
SIZE = 160         # px: the net is convolutional with an adaptive 6x6 pool, so any size >= 67 runs;
                   # 160 px costs half of 227 px a step and still gives conv5 an 8x8 map
LR = 0.1           # Adam's step on the spectrum
JITTER = 8         # random shift in px, Lucid's; twice conv1's stride of 4, against its checkerboard
SCALE = 0.1        # random zoom in [1 - SCALE, 1 + SCALE], Lucid's
DEGREES = 10.0     # random rotation in [-DEGREES, DEGREES], Lucid's
PAD = 12           # mid-grey border around each transformed copy, px, Lucid's: edges count like the middle
PROGRESS_EVERY = 8  # steps between progress(step, steps) calls

# Lucid's `color_correlation_svd_sqrt`: the square root of ImageNet's RGB covariance.
COLOR_SQRT = torch.tensor([[0.26, 0.09, 0.02],
                           [0.27, 0.00, -0.05],
                           [0.27, -0.09, 0.03]])
COLOR = COLOR_SQRT / COLOR_SQRT.norm(dim=0).max()  # largest column norm 1, as Lucid normalises it


@dataclass
class FeatureVis:
    """One optimised image and how far it moved its unit."""
    image: Image.Image             # RGB, size x size
    layer: str
    unit: int                      # channel (conv/pool), neuron (fc6/fc7) or class (fc8)
    start_activation: float        # objective on the starting image, no transforms
    final_activation: float        # objective on the returned image, measured the same way
    steps: int                     # steps actually taken (fewer when cancelled)
    seconds: float
    curve: list[float] = field(default_factory=list)  # objective on each step's transformed batch
    cancelled: bool = False


# ---------------------------------------------------------------- reading one unit

def unit_count(model: nn.Module, layer: str) -> int:
    """How many units `layer` has: conv/pool channels, fc neurons, fc8 classes."""
    if layer not in LAYERS:
        raise OptionError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
    m = model.param_layer("conv" + layer[-1] if layer.startswith("pool") else layer)  # a pool keeps its conv's channels
    return m.out_channels if isinstance(m, nn.Conv2d) else m.out_features


def check_unit(model: nn.Module, layer: str, unit: int) -> int:
    n = unit_count(model, layer)
    if not 0 <= int(unit) < n:
        raise OptionError(f"unit {unit} is out of range for {layer}: it has {n} units, numbered 0 to {n - 1}")
    return int(unit)


class _Reached(Exception):
    """Raised by the probe once the layer has run: nothing after it is computed."""


class _Probe:
    """Owns the forward hook on the module whose output is the objective; `release()` removes it.

    The hook acts only in the thread that made the probe, so another request running the same
    shared model meanwhile gets an untouched forward. In that thread it stops the forward as soon
    as the layer has run: a conv1 objective does not pay for conv2..fc8.
    """

    def __init__(self, model: nn.Module, layer: str, unit: int):
        self.model, self.unit = model, unit
        module = model.tap(layer) if layer.startswith("pool") else model.param_layer(layer)
        self._thread = threading.get_ident()
        self._out: torch.Tensor | None = None
        self._handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output):
        if threading.get_ident() == self._thread:
            self._out = output
            raise _Reached

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised batch -> (B,) mean activation of the unit in each image."""
        try:
            self.model(x)
        except _Reached:
            pass
        out = self._out[:, self.unit]              # (B, h, w) for conv/pool, (B,) for fc
        return out.reshape(len(x), -1).mean(dim=1)  # (B, h*w) or (B, 1) -> (B,)

    def release(self) -> None:
        self._handle.remove()

    def __enter__(self) -> "_Probe":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def unit_activation(model: nn.Module, layer: str, unit: int, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) normalised batch -> (B,) the objective `maximise` raises, per image, in the model's
    current mode and without gradients: how much a photo excites the unit, on the same scale."""
    unit = check_unit(model, layer, unit)
    with _Probe(model, layer, unit) as probe, torch.no_grad():
        return probe(x)


# ---------------------------------------------------------------- the image, parametrised

def _frequencies(size: int) -> torch.Tensor:
    """(size, size // 2 + 1) spatial frequency magnitude of each rfft2 coefficient, cycles per px."""
    fy = torch.fft.fftfreq(size)[:, None]       # (size, 1)
    fx = torch.fft.rfftfreq(size)[None, :]      # (1, size // 2 + 1)
    return (fy * fy + fx * fx).sqrt()           # (size, size // 2 + 1)


class _FourierImage:
    """An RGB image in [0, 1] made from a learnable, 1/f-scaled spectrum in decorrelated colour."""

    def __init__(self, size: int, generator: torch.Generator, device: torch.device, sd: float = 0.01):
        self.size = size
        freqs = _frequencies(size)
        self.scale = (1.0 / freqs.clamp(min=1.0 / size)).to(device)   # (size, size//2+1): 1/f, f >= 1/size
        init = sd * torch.randn(3, *freqs.shape, 2, generator=generator)  # (3, size, size//2+1, 2): real, imag
        self.spectrum = init.to(device).requires_grad_(True)
        self.color = COLOR.to(device)

    def __call__(self) -> torch.Tensor:
        """-> (1, 3, size, size) RGB in [0, 1]."""
        spec = torch.view_as_complex(self.spectrum) * self.scale                   # (3, size, size//2+1) complex
        # "ortho" = TF's irfft2d times sqrt(pixels), as Lucid; / 4 is Lucid's too: starts near grey.
        decorrelated = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0  # (3, size, size)
        rgb = torch.einsum("ij,jhw->ihw", self.color, decorrelated)                # (3, size, size)
        return torch.sigmoid(rgb).unsqueeze(0)                                     # (1, 3, size, size)


def _transform(img: torch.Tensor, n: int, generator: torch.Generator, jitter: float, scale: float,
               degrees: float, pad: int) -> torch.Tensor:
    """(1, 3, S, S) in [0, 1] -> (n, 3, S + 2 pad, S + 2 pad): n randomly shifted, scaled and rotated
    copies in one `grid_sample`, on a mid-grey border as Lucid's padding, so the image's edges are
    seen as often as its middle."""
    s, o = img.shape[-1], img.shape[-1] + 2 * pad
    u = torch.rand(n, 4, generator=generator).to(img.device) * 2 - 1     # (n, 4) in [-1, 1)
    shift = u[:, :2] * (2 * jitter / s)                                    # (n, 2) in the image's normalised coords
    zoom = (1 + u[:, 2] * scale) * (o / s)                                 # (n,): o / s keeps 1 px = 1 px
    angle = u[:, 3] * math.radians(degrees)                                # (n,)
    cos, sin = zoom * angle.cos(), zoom * angle.sin()                      # (n,), (n,)
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], dim=1),
                         torch.stack([sin, cos, shift[:, 1]], dim=1)], dim=1)  # (n, 2, 3)
    grid = F.affine_grid(theta, [n, 3, o, o], align_corners=False)         # (n, O, O, 2)
    centred = (img - 0.5).expand(n, -1, -1, -1)                            # (n, 3, S, S): zero = grey
    return F.grid_sample(centred, grid, padding_mode="zeros", align_corners=False) + 0.5  # (n, 3, O, O)


def _to_pil(img: torch.Tensor) -> Image.Image:
    """(1, 3, S, S) in [0, 1] -> RGB PIL image."""
    hwc = img.detach()[0].permute(1, 2, 0).cpu().numpy()  # (S, S, 3)
    return Image.fromarray((hwc * 255).round().clip(0, 255).astype(np.uint8), "RGB")


def _should_stop(cancel) -> bool:
    if cancel is None:
        return False
    return bool(cancel.is_set() if hasattr(cancel, "is_set") else cancel())


# ---------------------------------------------------------------- the optimisation

def maximise(model: nn.Module, layer: str, unit: int, steps: int = STEPS, size: int = SIZE,
             generator: torch.Generator | None = None, progress=None, cancel=None, lr: float = LR,
             batch: int = 1, jitter: float = JITTER, scale: float = SCALE, degrees: float = DEGREES,
             pad: int = PAD, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> FeatureVis:
    """Optimise an image to maximise `unit` of `layer`; see the module docstring for the method.

    `generator` (default: a new one seeded 0) supplies the starting spectrum and every transform,
    so the same seed gives the same image. Each step sees `batch` transformed copies. `progress`
    is called as progress(step, steps) every few steps; `cancel` (a threading.Event or a
    callable) is checked every step, and when set the image so far comes back with
    cancelled=True. `mean`/`std` are the model's input normalisation.
    """
    unit = check_unit(model, layer, unit)
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)  # (1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)    # (1, 3, 1, 1)
    t0 = time.perf_counter()
    was_training = model.training
    model.eval()  # no dropout in fc6/fc7: the objective must not change between steps
    curve: list[float] = []
    cancelled = False
    try:
        with _Probe(model, layer, unit) as probe, torch.inference_mode(False), torch.enable_grad():
            image = _FourierImage(size, generator, device)
            optimiser = torch.optim.Adam([image.spectrum], lr=lr)
            with torch.no_grad():
                start = float(probe((image() - mean_t) / std_t)[0])
            for step in range(1, steps + 1):
                if _should_stop(cancel):
                    cancelled = True
                    break
                views = _transform(image(), batch, generator, jitter, scale, degrees, pad)  # (batch, 3, S+2pad, S+2pad)
                objective = probe((views - mean_t) / std_t).mean()
                (grad,) = torch.autograd.grad(-objective, [image.spectrum])  # no .grad on the model
                image.spectrum.grad = grad
                optimiser.step()
                curve.append(objective.item())
                if progress is not None and (step % PROGRESS_EVERY == 0 or step == steps):
                    progress(step, steps)
            with torch.no_grad():
                final_image = image()
                final = float(probe((final_image - mean_t) / std_t)[0])
    finally:
        model.train(was_training)
    return FeatureVis(image=_to_pil(final_image), layer=layer, unit=unit, start_activation=start,
                      final_activation=final, steps=len(curve), seconds=time.perf_counter() - t0,
                      curve=curve, cancelled=cancelled)
