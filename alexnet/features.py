"""One batched pass over a decoded dataset, and the one on-disk store of what it recorded.

    out = dataset_pass(model, images, 227, mean, std, record=lambda m, x: {"fc7": m(x, return_activations=True)[1]["fc7"]})
    key = store_key("fc7", model_hash(model), decoded.key, mean, std, 227)
    arrays = cached(key, len(images), lambda: dataset_pass(...))       # computed once, then read back

Every user of "run the network over a whole folder" goes through `dataset_pass`: training's
frozen-trunk features (alexnet.train), evaluation's softmax (alexnet.evaluate), the embedding
map's fc7 and the top-patches table (viz.embedding), the paper report. The images stay uint8
(N, 3, H, W) in memory; each batch is cropped, normalised and moved to the device on its own,
so a 3,667-image folder never exists as float32 (2.2 GB) at once.

The store keeps named float/int arrays as safetensors files under cache_dir()/features/, one
file per key, least-recently-used files evicted beyond `MAX_CACHE_FILES` or `MAX_CACHE_BYTES`.
A key names the model (a fingerprint of its tensors), the data, the preprocessing, what was
recorded and `CACHE_VERSION`; a stale or damaged file is recomputed, never trusted.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from alexnet import device as dev_
from alexnet.images import center_crop, normalize, ten_crop
from alexnet.files import atomic_write_bytes, cache_dir, sha256_file

FEATURES_DIR = "features"            # under alexnet.weights.cache_dir()
CACHE_VERSION = 2                    # bump when a pass changes, so old files are not reused (1: the .npz era)
MAX_CACHE_FILES = 8                  # 3,667 x 4096 float32 (fc7 of the flowers) is 60 MB a file
MAX_CACHE_BYTES = 2 << 30            # training's conv5 features with mirrors are ~250 MB each
VIEWS = ("centre", "mirror", "ten")  # what `dataset_pass` can show the network per image

Record = Callable[[nn.Module, torch.Tensor], dict]


# ---------------------------------------------------------------- keys

def model_hash(model: nn.Module | str | os.PathLike, without: str | None = None) -> str:
    """A short key for a model's function: its spec plus a fingerprint of every tensor.

    A checkpoint path is hashed byte for byte (sha256). A live model is fingerprinted
    cheaply (~30 ms for 61M parameters): each tensor's name, shape, dtype, sum and a strided
    sample of about 256 values, so any training step or reload changes it. (A float32 sum
    may differ between machines; that costs a cache miss, never a wrong hit.)
    `without="fc8"` (an AlexNet): the function up to fc7 alone, i.e. the spec without its class
    count and no fc8 tensors, so a copy fine-tuned with a new fc8 shares its source's fc7 key.
    """
    if isinstance(model, (str, os.PathLike)):
        return sha256_file(model)[:16]
    h = hashlib.blake2b(digest_size=8)
    spec = getattr(model, "spec", None)
    desc = spec.to_dict() if spec is not None else model                     # a Sequential: its module list
    skip = None
    if without is not None:
        desc = {k: v for k, v in desc.items() if k != "num_classes"}
        skip = model.param_key(without) + "."
    h.update(repr(desc).encode())
    with torch.no_grad():
        for name, t in model.state_dict().items():
            if skip is not None and name.startswith(skip):
                continue
            flat = t.detach().flatten()
            h.update(f"{name}{tuple(t.shape)}{t.dtype}".encode())
            if flat.numel() and flat.is_floating_point():
                h.update(np.float32(flat.float().sum().item()).tobytes())
            sample = flat[::max(1, flat.numel() // 256)].cpu()
            h.update((sample.float() if sample.is_floating_point() else sample).numpy().tobytes())  # bf16: no numpy
    return h.hexdigest()


def data_hash(images_or_paths) -> str:
    """A short key for a dataset: the bytes of a uint8 tensor/array, or paths with sizes and mtimes.

    Pixels are hashed in full (~1 s for 720 MB); a path list is the cheap alternative when
    the images came from files (`alexnet.data.Decoded.key` serves as well).
    """
    h = hashlib.blake2b(digest_size=8)
    if isinstance(images_or_paths, (torch.Tensor, np.ndarray)):
        a = images_or_paths.detach().cpu().numpy() if isinstance(images_or_paths, torch.Tensor) else images_or_paths
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
        return h.hexdigest()
    for p in images_or_paths:
        st = Path(p).stat() if Path(p).exists() else None
        h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()


def fc7_key(model: nn.Module, data_key: str, mean, std, input_size: int) -> str:
    """The store's name for an AlexNet's fc7 over a dataset (centre crops): the Embeddings map's features and
    the default fine-tune's (a new fc8 on fc7) are one pass, whichever asks first."""
    return store_key("fc7", model_hash(model, without="fc8"), data_key, mean, std, input_size)


def record_fc7(model: nn.Module, x: torch.Tensor) -> dict:
    """`dataset_pass`'s record for fc7 (after its ReLU): {"fc7": (B, 4096 * width)}."""
    return {"fc7": model(x, upto="fc7")}


def store_key(what: str, model_key: str, data_key: str, mean, std, input_size: int, views=("centre",)) -> str:
    """The name of one stored pass: what was recorded, by which model, on which data, preprocessed how."""
    prep = hashlib.blake2b(repr((tuple(map(float, mean)), tuple(map(float, std)), int(input_size), tuple(views),
                                 CACHE_VERSION)).encode(), digest_size=4).hexdigest()
    return f"{what}-{model_key}-{data_key}-{prep}"


# ---------------------------------------------------------------- the pass

def _views(u: torch.Tensor, size: int, views: tuple[str, ...]) -> list[torch.Tensor]:
    """(B, 3, H, W) uint8 -> the crops each image is shown as, each (B, 3, size, size)."""
    out = []
    for v in views:
        if v == "centre":
            out.append(center_crop(u, size))
        elif v == "mirror":
            out.append(center_crop(u, size).flip(-1))
        elif v == "ten":                       # the paper's 10-crop test: 4 corners + centre, and their mirrors
            out += list(ten_crop(u, size))
        else:
            raise ValueError(f"unknown view {v!r}; choose from {', '.join(VIEWS)}")
    return out


def _output(record: Record, model: nn.Module, parts: list[torch.Tensor]) -> dict[str, np.ndarray]:
    """Run every view as one batch; (V*B, ...) outputs -> (B, ...) for one view, (B, V, ...) for several."""
    b, v = len(parts[0]), len(parts)
    out = record(model, torch.cat(parts) if v > 1 else parts[0])
    arrays = {}
    for k, t in out.items():
        t = (t.float() if t.is_floating_point() else t).cpu()
        if v > 1:
            t = t.view(v, b, *t.shape[1:]).transpose(0, 1)      # (V*B, ...) -> (B, V, ...)
        arrays[k] = t.numpy()
    return arrays


def dataset_pass(model: nn.Module, images: torch.Tensor, input_size: int, mean, std, record: Record | None = None,
                 *, views: tuple[str, ...] = ("centre",), index: torch.Tensor | None = None, batch_size: int = 64,
                 device=None, progress=None) -> dict[str, np.ndarray]:
    """Run every image (or `images[index]`) through `model` once, in eval mode without autograd.

    `record(model, x)` gets a normalised float batch (B, 3, S, S) on the device and returns
    named tensors with B rows (default: `{"out": model(x)}`); their rows are concatenated
    into float32/int numpy arrays. Several `views` (e.g. centre and mirror) give arrays of
    shape (N, V, ...). `progress(done, total)` is called per batch. `device` moves the model
    there; by default it runs where the model is. The model's train/eval mode is restored,
    so a caller mid-training is unaffected.
    """
    if images.dim() != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if min(images.shape[-2:]) < input_size:
        raise ValueError(f"images are {images.shape[-2]}x{images.shape[-1]}, smaller than the model's "
                         f"{input_size}x{input_size} input")
    order = torch.arange(len(images)) if index is None else torch.as_tensor(index, dtype=torch.int64).cpu()
    if len(order) == 0:
        raise ValueError("no images to run")
    record = record or (lambda m, x: {"out": m(x)})
    if device is not None:
        dev = dev_.pick(device)
        model.to(dev)
    else:
        p = next(model.parameters(), None)
        dev = p.device if p is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    n, parts = len(order), []
    try:
        with torch.inference_mode(), dev_.autocast(dev):
            for start in range(0, n, batch_size):
                u = images[order[start:start + batch_size].to(images.device)].to(dev)        # (B, 3, H, W) uint8
                # channels_last: without autograd, oneDNN's convolutions (and LRN's 1x1 one) run ~20% faster
                # on a CPU in that layout (training keeps the default; see alexnet.device.memory_format)
                crops = [normalize(dev_.to_input(c, dev), mean, std).contiguous(memory_format=torch.channels_last)
                         for c in _views(u, input_size, views)]
                parts.append(_output(record, model, crops))
                if progress is not None:
                    progress(min(start + batch_size, n), n)
    finally:
        model.train(was_training)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ---------------------------------------------------------------- the store

def _dir() -> Path:
    d = cache_dir() / FEATURES_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def load(key: str, n: int | None = None) -> dict[str, np.ndarray] | None:
    """The arrays stored under `key` (each with `n` rows if given), or None if absent or unreadable."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file
    path = _dir() / f"{key}.safetensors"
    if not path.exists():
        return None
    try:
        arrays = load_file(str(path))
    except (OSError, SafetensorError, ValueError) as e:     # a cache is only a cache
        warnings.warn(f"ignoring the damaged feature cache {path.name} ({e}); computing again")
        path.unlink(missing_ok=True)
        return None
    if n is not None and any(len(a) != n for a in arrays.values()):
        return None
    os.utime(path)            # a hit counts as use: eviction is least-recently-used by mtime
    return arrays


def save(key: str, arrays: dict[str, np.ndarray], keep: int = MAX_CACHE_FILES,
         max_bytes: int = MAX_CACHE_BYTES) -> None:
    """Write atomically, then delete the least recently used files beyond `keep` files or `max_bytes`."""
    from safetensors.numpy import save_file
    d = _dir()
    atomic_write_bytes(d / f"{key}.safetensors",
                       lambda tmp: save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, tmp))
    for stale in d.glob("*.npz"):            # CACHE_VERSION 1 wrote .npz files: never read again
        stale.unlink(missing_ok=True)
    files = sorted(d.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    total = 0
    for i, f in enumerate(files):
        total += f.stat().st_size
        if i >= max(1, keep) or (i > 0 and total > max_bytes):   # the newest file always stays
            f.unlink(missing_ok=True)


def cached(key: str | None, n: int, compute: Callable[[], dict[str, np.ndarray]], *, keep: int = MAX_CACHE_FILES,
           progress=None) -> tuple[dict[str, np.ndarray], bool]:
    """(arrays, came_from_store): the stored arrays for `key`, else `compute()` stored under it.

    `key=None` computes without storing (tests, one-off runs).
    """
    if key is not None:
        found = load(key, n)
        if found is not None:
            if progress is not None:
                progress(n, n)
            return found, True
    arrays = compute()
    if key is not None:
        save(key, arrays, keep)
    return arrays, False
