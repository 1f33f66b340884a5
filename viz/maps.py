"""The six attribution methods, one small function each, over Captum (its one-call-shape idea).

Each takes (model, x (1, 3, H, W) normalised, target int, **options) and returns an (H, W) tensor >= 0;
viz.methods holds their records (labels, cost, checks), viz.attribution the one call that runs them.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from captum.attr import GuidedBackprop, IntegratedGradients, LayerGradCam, Occlusion, Saliency
from torch import nn

CAM_LAYER = "conv5"  # the last conv layer: the finest map that still "knows" the class


# ---------------------------------------------------------------- reductions to (H, W) >= 0

def _abs_max(attr: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) signed attribution -> (B, H, W): |a| max over channels (Simonyan et al.)."""
    return attr.detach().abs().amax(dim=1)  # (B, H, W)


def _cam(grad: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
    """Grad-CAM before the ReLU: (B, C, h, w) gradients and activations -> (B, 1, h, w), the channels
    weighted by their spatially averaged gradient (Selvaraju et al.)."""
    weights = grad.mean(dim=(2, 3), keepdim=True)                    # (B, C, 1, 1)
    return (weights * act.detach()).sum(dim=1, keepdim=True)        # (B, 1, h, w)


def _relu_cam(cam: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(B, 1, h, w) Grad-CAM -> (B, H, W): ReLU (evidence for the class only), bilinear to the input."""
    cam = F.relu(cam.detach())
    return F.interpolate(cam, size=size, mode="bilinear", align_corners=False)[:, 0]  # (B, H, W)


# ---------------------------------------------------------------- one small function per method
# Each takes (model, x (1, 3, H, W), target int, **options) and returns an (H, W) tensor >= 0.

def _saliency(model, x, target):
    """Plain input gradient: cheapest, noisiest; the baseline every other method is judged against."""
    return _abs_max(Saliency(model).attribute(x, target=target, abs=True))[0]


# Passes of many images go through the network PASS_BATCH at a time: on a CPU a batch of 8 costs as much
# per image as one of 32 (33 against 31 ms for a forward and backward of the paper model on 2 cores),
# holds a quarter of the activations, and each batch is a point where the app's slow lane lets cheap
# requests go first (app.lanes).
PASS_BATCH = 8


def _integrated_gradients(model, x, target, steps: int = 32, internal_batch_size: int = PASS_BATCH):
    """IG from the all-zero (= dataset-mean colour) baseline; the `steps` go through the net as
    batches of `internal_batch_size`, never one at a time."""
    attr = IntegratedGradients(model).attribute(
        x, baselines=torch.zeros_like(x), target=target, n_steps=steps,
        internal_batch_size=internal_batch_size)
    return _abs_max(attr)[0]


def _smoothgrad(model, x, target, samples: int = 16, noise: float = 0.15, batch_size: int = PASS_BATCH,
                seed: int = 0):
    """Saliency averaged over noisy copies (Smilkov et al. 2017); `noise` is the std as a fraction
    of the input's value range (the paper's 10-20 %). Samples run `batch_size` at a time.

    The noise comes from a generator seeded with `seed`, not torch's global RNG (Captum's
    NoiseTunnel draws from that): the same image and seed give the same map, whatever other
    requests or a training thread draw meanwhile.
    """
    stdev = noise * float(x.max() - x.min())
    gen = torch.Generator(device=x.device).manual_seed(seed)
    total = torch.zeros_like(x)                                                    # (1, 3, H, W)
    for start in range(0, samples, batch_size):
        n = min(batch_size, samples - start)
        eps = torch.randn((n, *x.shape[1:]), generator=gen, device=x.device, dtype=x.dtype)  # (n, 3, H, W)
        grads = Saliency(model).attribute(x + stdev * eps, target=target, abs=True)           # (n, 3, H, W)
        total += grads.sum(0, keepdim=True)
    return _abs_max(total / samples)[0]


def _guided_backprop(model, x, target):
    """Gradient with negative signals stopped at every ReLU; needs separate, non-inplace nn.ReLU
    modules (Captum swaps their backward). Known to pass the randomisation sanity check badly."""
    bad = [n for n, m in model.named_modules() if isinstance(m, nn.ReLU) and m.inplace]
    if bad:
        raise ValueError(f"guided_backprop needs non-inplace ReLUs; in-place at: {', '.join(bad)}")
    return _abs_max(GuidedBackprop(model).attribute(x, target=target))[0]


def _gradcam(model, x, target, layer: str = CAM_LAYER):
    """Grad-CAM on `layer` (conv5 by default), ReLU'd and upsampled to the input."""
    cam = LayerGradCam(model, model.tap(layer)).attribute(x, target=target)  # (1, 1, h, w)
    return _relu_cam(cam, tuple(x.shape[-2:]))[0]


def _occlusion(model, x, target, window: int | None = None, stride: int | None = None, batch_size: int = 2 * PASS_BATCH):
    """Score drop when a grey (zero = mean colour) square hides each region; `batch_size`
    occluded copies per forward. Default window ~1/6 of the side, stride half the window."""
    window = window or max(1, x.shape[-1] // 6)
    stride = stride or max(1, window // 2)
    attr = Occlusion(model).attribute(
        x, sliding_window_shapes=(x.shape[1], window, window), strides=(x.shape[1], stride, stride),
        baselines=0.0, target=target, perturbations_per_eval=batch_size)
    return F.relu(attr.detach()).mean(dim=1)[0]  # (H, W); equal across channels by construction


# The six, in the order every list shows them: one-pass methods first, occlusion (hundreds of passes) last.
