"""Batched random-resized crops and the progressive-resizing schedule of the fast recipe.

Why these two live together: training at a low resolution early is only a win if the crops
are made at that resolution in one batched op, with no per-image PIL work. Everything here is
`f(uint8 images) -> float images` over a whole batch, on whatever device the images live on.

- `random_resized_crop_flip`: Inception-style crops (a random area fraction and aspect ratio
  of each 256x256 image, resampled to `size`), mirrored at random, in one `grid_sample` call.
- `progressive_sizes`: which input size each epoch trains at: low sizes first, the test size
  at the end (Touvron et al. 2019, "FixRes": the last epoch at test size closes the train/test
  resolution gap). AlexNet is convolutional up to pool5, whose adaptive 6x6 average pool lets
  any size from 67 px up feed fc6, so the same weights serve every size.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

# Areas and aspect ratios of the crops, as in torchvision's RandomResizedCrop but with a
# larger smallest area: 3,000 flower photos fill most of the frame, and an 8% crop is
# mostly leaves.
SCALE = (0.25, 1.0)
RATIO = (3 / 4, 4 / 3)
# Sizes step by 32 px down from the test size: for the paper's 227 that is 195, 163, 131,
# each of which tiles conv1's 11x11 stride-4 windows exactly ((s - 11) % 4 == 0, like 227).
SIZE_STEP = 32


def random_resized_crop_flip(images: torch.Tensor, size: int, generator: torch.Generator | None = None,
                             scale: tuple[float, float] = SCALE, ratio: tuple[float, float] = RATIO) -> torch.Tensor:
    """(B, 3, H, W) uint8 -> (B, 3, size, size) float in 0-1: one random crop per image, resized, half mirrored.

    Each output pixel reads the input through an affine map (crop box -> output square, with
    a negative x scale for the mirrored ones), so crop, resize and flip are one bilinear
    `grid_sample` over the batch. The generator must live on the images' device.
    """
    b, _, h, w = images.shape
    dev = images.device
    u = torch.rand((b, 4), generator=generator, device=dev)                       # (B, 4) uniforms
    area = scale[0] + (scale[1] - scale[0]) * u[:, 0]                               # (B,) fraction of H*W
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    r = log_r.exp()                                                                 # (B,) width / height
    cw = (area * r).sqrt().clamp(max=1.0)                                           # (B,) crop width / W
    ch = (area / r).sqrt().clamp(max=1.0)                                           # (B,) crop height / H
    cx = (u[:, 2] * 2 - 1) * (1 - cw)                                               # (B,) centre in [-1, 1] coords
    cy = (u[:, 3] * 2 - 1) * (1 - ch)
    flip = torch.rand((b,), generator=generator, device=dev) < 0.5
    sx = torch.where(flip, -cw, cw)
    theta = torch.zeros((b, 2, 3), device=dev)                                      # (B, 2, 3) output -> input
    theta[:, 0, 0], theta[:, 0, 2] = sx, cx
    theta[:, 1, 1], theta[:, 1, 2] = ch, cy
    grid = F.affine_grid(theta, [b, 3, size, size], align_corners=False)            # (B, size, size, 2)
    x = images.float().div_(255)                                                    # (B, 3, H, W) in 0-1
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def progressive_sizes(epochs: int, final: int, low: int = 131, final_epochs: int = 1) -> list[int]:
    """The input size for each epoch: a ramp from `low` up to one step below `final`, then `final`.

    The ramp holds most epochs near `low` (where an epoch costs about a third of one at 227)
    and climbs in `SIZE_STEP` steps; the last `final_epochs` train at `final`, the size the
    model is tested at. A run too short for a ramp trains at `final` throughout.

    >>> progressive_sizes(8, 227)
    [131, 131, 131, 131, 131, 163, 195, 227]
    """
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, not {epochs}")
    final_epochs = min(max(1, final_epochs), epochs)
    ramp = epochs - final_epochs
    steps = max(0, (final - low) // SIZE_STEP)                                      # sizes below final: low .. final-32
    sizes_below = [final - SIZE_STEP * k for k in range(steps, 0, -1)]              # ascending, e.g. 131, 163, 195
    if ramp == 0 or not sizes_below:
        return [final] * epochs
    # Epoch e of the ramp takes the size at fraction (e / ramp)^2 of the way up: the square keeps
    # the cheap sizes longest, where the network learns its coarse features.
    out = [sizes_below[min(len(sizes_below) - 1, int(len(sizes_below) * (e / ramp) ** 2))] for e in range(ramp)]
    return out + [final] * final_epochs


def step_work(size: int, final: int) -> float:
    """A training step's cost at `size` relative to one at `final`: conv1's output area, which
    every later conv layer's area follows (the fc layers, ~8% of the work at 227, are ignored)."""
    return (((size - 11) // 4 + 1) / ((final - 11) // 4 + 1)) ** 2
