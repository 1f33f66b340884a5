"""One small picture per conv5 channel, made by feature visualisation, for the concept views (viz.concepts).

    icons = icons_for(model, model_sha256)      # (C, 3, S, S) uint8, C = conv5's channels

The icons are viz.feature_vis's images (Fourier parametrisation, decorrelated colour, random
shift/zoom/rotation), made for every channel at once: ONE batch of C small images, image c's
objective the mean pre-ReLU activation of channel c, all optimised together by one Adam. The
images do not interact (eval mode; LRN mixes channels, never images), so the batch's summed
objective gives each image exactly its own channel's gradient, at the price of one pass for all
channels instead of C passes. The forward stops at conv5's Conv2d: nothing after it is computed.

Where they come from, cheapest first: the shipped file (assets/flowers_conv5_icons.safetensors)
when `model_sha256` is the shipped model's; else a file under cache_dir()/concept_icons/; else
made here (minutes on a CPU), with progress(step, steps), and saved there atomically.
Rebuild the shipped file: `python -m viz.concept_icons_build`.
"""
from __future__ import annotations

import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from alexnet.files import ASSETS, atomic_write_bytes, cache_dir, read_arrays
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD
from viz.feature_vis import COLOR, DEGREES, SCALE, _frequencies, _should_stop, _transform

SHIPPED_ICONS = ASSETS / "flowers_conv5_icons.safetensors"
FORMAT = "alexnet-explainer/conv5-icons/1"
ICONS_DIR = "concept_icons"        # under cache_dir()
LAYER = "conv5"
SIZE = 64                          # px: the icon, and the image optimised (conv5 sees it as a 4x4 map with the pad)
STEPS = 128                        # Adam steps for the whole batch; see the build's sidecar for the time it took
LR = 0.05                          # Adam's step on the spectrum (feature_vis's 0.1 over-saturates small images)
JITTER = 4                         # px of random shift: feature_vis's 8 scaled to the smaller picture
PAD = 6                            # grey border px, likewise
SEED = 0
PROGRESS_EVERY = 4                 # steps between progress calls
QUALITY = 92                       # JPEG quality of the stored atlas
ATLAS_COLUMNS = 16


class _FourierBatch:
    """B images in [0, 1], each from its own learnable 1/f-scaled spectrum in decorrelated colour:
    viz.feature_vis's _FourierImage with a batch dimension (the same frequencies, colour matrix and scales)."""

    def __init__(self, n: int, size: int, generator: torch.Generator, device, sd: float = 0.01):
        self.size = size
        freqs = _frequencies(size)                                                   # (S, S//2+1)
        self.scale = (1.0 / freqs.clamp(min=1.0 / size)).to(device)                 # 1/f, f >= 1/size
        init = sd * torch.randn(n, 3, *freqs.shape, 2, generator=generator)          # (B, 3, S, S//2+1, 2)
        self.spectrum = init.to(device).requires_grad_(True)
        self.color = COLOR.to(device)

    def __call__(self) -> torch.Tensor:
        """-> (B, 3, S, S) RGB in [0, 1]."""
        spec = torch.view_as_complex(self.spectrum) * self.scale                     # (B, 3, S, S//2+1)
        decorrelated = torch.fft.irfft2(spec, s=(self.size, self.size), norm="ortho") / 4.0  # (B, 3, S, S)
        rgb = torch.einsum("ij,bjhw->bihw", self.color, decorrelated)                # (B, 3, S, S)
        return torch.sigmoid(rgb)


def _upto(model: nn.Module, layer: str) -> nn.Sequential:
    """model.features up to and including `layer`'s Conv2d: its output is the pre-ReLU map."""
    conv = model.param_layer(layer)
    stop = next(i for i, m in enumerate(model.features) if m is conv)
    return model.features[:stop + 1]


def make_icons(model: nn.Module, steps: int = STEPS, size: int = SIZE, generator: torch.Generator | None = None,
               progress=None, cancel=None, layer: str = LAYER, lr: float = LR, jitter: float = JITTER,
               pad: int = PAD, mean=IMAGENET_MEAN, std=IMAGENET_STD, units=None) -> tuple[torch.Tensor, dict]:
    """Every channel of `layer`'s icon, optimised as one batch -> ((C, 3, size, size) uint8, info).

    `units` (a list of channels) makes only those icons, in that order: (len(units), 3, size, size).

    info: steps taken, seconds, cancelled, and each channel's objective before and after
    (`start`, `final`: (C,) lists, the channel's mean pre-ReLU activation on its own image).
    `generator` (default: seeded `SEED`) draws the start and every transform. `cancel` (an Event
    or a callable) is checked each step; when set, the images so far come back with cancelled=True.
    The model's mode and parameters are left as they were; gradients go to the images only.
    """
    generator = generator if generator is not None else torch.Generator().manual_seed(SEED)
    device = next(model.parameters()).device
    trunk = _upto(model, layer)
    own = torch.arange(trunk[-1].out_channels) if units is None else torch.as_tensor(list(units), dtype=torch.long)
    n, own, rows = len(own), own.to(device), torch.arange(len(own), device=device)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=device).view(1, 3, 1, 1)

    def objective(x: torch.Tensor) -> torch.Tensor:            # (n, 3, H, W) in [0, 1] -> (n,)
        out = trunk((x - mean_t) / std_t)                      # (n, C, h, w) pre-ReLU
        return out[rows, own].mean(dim=(1, 2))                 # image i's own channel

    t0, was_training, done, cancelled = time.perf_counter(), model.training, 0, False
    model.eval()
    try:
        with torch.inference_mode(False), torch.enable_grad():
            images = _FourierBatch(n, size, generator, device)
            optimiser = torch.optim.Adam([images.spectrum], lr=lr)
            with torch.no_grad():
                start = objective(images())
            for step in range(1, steps + 1):
                if _should_stop(cancel):
                    cancelled = True
                    break
                views = _transform(images(), n, generator, jitter, SCALE, DEGREES, pad)  # each its own move
                (grad,) = torch.autograd.grad(-objective(views).sum(), [images.spectrum])
                images.spectrum.grad = grad
                optimiser.step()
                done = step
                if progress is not None and (step % PROGRESS_EVERY == 0 or step == steps):
                    progress(step, steps)
            with torch.no_grad():
                final_images = images()
                final = objective(final_images)
    finally:
        model.train(was_training)
    icons = (final_images.detach() * 255).round().clamp(0, 255).to(torch.uint8).cpu()
    info = dict(layer=layer, size=size, steps=done, cancelled=cancelled, lr=lr, jitter=jitter, pad=pad,
                seconds=round(time.perf_counter() - t0, 1), start=start.cpu().tolist(), final=final.cpu().tolist())
    return icons, info


# ---------------------------------------------------------------- on disk: one JPEG atlas in safetensors

def _atlas(icons: torch.Tensor, quality: int = QUALITY) -> np.ndarray:
    """(C, 3, S, S) uint8 -> the bytes of one JPEG, the icons in rows of ATLAS_COLUMNS. S is a multiple of
    16 (a JPEG block with its colour subsampling), so no icon's compression reads its neighbour's pixels."""
    n, _, s, _ = icons.shape
    rows = -(-n // ATLAS_COLUMNS)
    grid = torch.zeros(rows * ATLAS_COLUMNS, 3, s, s, dtype=torch.uint8)
    grid[:n] = icons
    hwc = grid.view(rows, ATLAS_COLUMNS, 3, s, s).permute(0, 3, 1, 4, 2).reshape(rows * s, ATLAS_COLUMNS * s, 3)
    buf = io.BytesIO()
    Image.fromarray(hwc.numpy()).save(buf, format="JPEG", quality=quality, optimize=True)
    return np.frombuffer(buf.getvalue(), dtype=np.uint8)


def _from_atlas(jpeg: np.ndarray, n: int) -> torch.Tensor:
    """The inverse of `_atlas`: -> (n, 3, S, S) uint8."""
    hwc = torch.from_numpy(np.asarray(Image.open(io.BytesIO(jpeg.tobytes())).convert("RGB")).copy())
    s = hwc.shape[1] // ATLAS_COLUMNS
    grid = hwc.view(-1, s, ATLAS_COLUMNS, s, 3).permute(0, 2, 4, 1, 3).reshape(-1, 3, s, s)
    return grid[:n].contiguous()


def save_icons(path: Path, icons: torch.Tensor, info: dict) -> None:
    """The icons as one JPEG atlas (a fifth of the raw bytes; 256 icons of 64 px: ~0.6 MB) in a safetensors
    file, atomically; `info` (JSON-able) goes in its header."""
    from safetensors.numpy import save_file
    meta = dict(format=FORMAT, count=str(len(icons)), info=json.dumps(info))
    atomic_write_bytes(Path(path), lambda tmp: save_file({"jpeg": _atlas(icons)}, tmp, metadata=meta))


def load_icons(path: Path) -> tuple[torch.Tensor, dict] | None:
    """(icons (C, 3, S, S) uint8, info), or None when the file is missing or unreadable (a cache is only a cache)."""
    found = read_arrays(path, FORMAT)
    if found is None:
        return None
    meta, arrays = found
    try:
        return _from_atlas(arrays["jpeg"], int(meta["count"])), json.loads(meta.get("info") or "{}")
    except (OSError, ValueError, KeyError) as e:                  # a damaged atlas inside a readable file
        import warnings
        warnings.warn(f"ignoring the unreadable icons file {Path(path).name} ({e})")
        return None


def cached_icons_path(model_sha256: str, steps: int = STEPS, size: int = SIZE, seed: int = SEED) -> Path:
    return cache_dir() / ICONS_DIR / f"{model_sha256[:32]}-{LAYER}-s{size}-n{steps}-seed{seed}.safetensors"


def channels(model: nn.Module, layer: str = LAYER) -> int:
    return model.param_layer(layer).out_channels


def icons_for(model: nn.Module, model_sha256: str, progress=None, cancel=None, steps: int = STEPS,
              size: int = SIZE, seed: int = SEED, mean=IMAGENET_MEAN, std=IMAGENET_STD,
              shipped: Path = SHIPPED_ICONS, make: bool = True) -> torch.Tensor | None:
    """(C, 3, S, S) uint8 icons of conv5's channels for the model whose file hashes to `model_sha256`.

    The shipped ones when the hash is the shipped model's; else the cached file; else made now
    (`make_icons`, calling progress(step, steps)) and cached - or None with `make=False` (is it instant?).
    `mean`/`std`: the model's input normalisation (its meta's). A cancelled run returns its images so far,
    uncached.
    """
    found = load_icons(shipped)
    if found is not None and found[1].get("model_sha256") == model_sha256 and len(found[0]) == channels(model):
        return found[0]
    path = cached_icons_path(model_sha256, steps, size, seed)
    found = load_icons(path)
    if found is not None and len(found[0]) == channels(model):
        return found[0]
    if not make:
        return None
    icons, info = make_icons(model, steps, size, torch.Generator().manual_seed(seed), progress, cancel,
                             mean=mean, std=std)
    if info["cancelled"]:
        return icons
    info.update(model_sha256=model_sha256, seed=seed)
    save_icons(path, icons, info)
    return load_icons(path)[0]         # as stored (JPEG), so this call and every later one show the same pixels


if __name__ == "__main__":
    from viz.concept_icons_build import main
    main()
