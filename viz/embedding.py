"""Flow 3, "Embed": what the network's last hidden layer thinks is similar.

    feats = fc7_features(model, images, mean, std, 227)      # (N, 4096) float32, cached on disk
    m = fit_map(feats, labels, classes)                       # UMAP 2-D of the dataset
    scatter(m, star=place(m, fc7_of_upload))                  # the upload drawn into the map
    neighbours(feats, fc7_of_upload, k=6)                     # the paper's Figure 4, in cosine
    top_patches(model, images, mean, std, 227, unit=17)       # what one conv5 unit fires on

A pass over a dataset costs minutes on a CPU, so its result is cached on disk under
cache_dir()/features, keyed by the model's weights, the images and the preprocessing.
Fitted maps are cached in memory by a `MapCache` the caller owns (no module globals).

UMAP runs on cosine geometry, the same one `neighbours` ranks by: rows are L2-normalised,
projected to 50 dims by PCA (a seeded randomized SVD), and UMAP is given the exact
Euclidean distance matrix of those points (`metric="precomputed"`). That matrix is one
BLAS call, where umap-learn's own small-data path calls a Python distance function per
pair (~10 s for 3,667 points on 2 cores) and its large-data path compiles pynndescent
(~70 s of numba JIT on first use). The price is O(N^2) memory, hence `MAX_MAP_POINTS`.
Fitting runs BLAS on one thread: these matrices are small, and on a busy 2-core machine
OpenBLAS's spinning threads made the PCA 3-9x slower than one thread.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
import warnings
import zipfile
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from threadpoolctl import threadpool_limits
from torch import nn

from alexnet import device as D
from alexnet.images import center_crop, normalize
from alexnet.model import LAYERS
from alexnet.shapes import layer_table
from alexnet.weights import atomic_write_bytes, cache_dir
from viz.plots import figure_to_image, new_figure

FEATURES_DIR = "features"     # under alexnet.weights.cache_dir()
MAX_CACHE_FILES = 8           # feature files kept on disk; 3,667 x 4096 float32 is 60 MB each
PCA_DIMS = 50                 # UMAP input: 80x fewer dims than fc7, 73% of flowers' fc7 variance
# 200 epochs is what umap-learn itself uses above 10k points; its 500 below that cost 2.5x the layout time.
UMAP_DEFAULTS = dict(n_neighbors=15, min_dist=0.1, n_epochs=200)
MAX_MAP_POINTS = 20_000       # the exact distance matrix is N^2 float32: 1.6 GB at this size
_CACHE_VERSION = 1            # bump when extraction changes, so stale files are not reused


# ---------------------------------------------------------------- cache keys

def model_hash(model: nn.Module | str | os.PathLike) -> str:
    """A short key for a model's function: its spec plus a fingerprint of every tensor.

    A checkpoint path is hashed byte for byte (sha256). A live model is fingerprinted
    cheaply (~30 ms for 61M parameters): each tensor's name, shape, dtype, sum and a strided
    sample of about 256 values, so any training step or reload changes it. (A float32 sum
    may differ between machines; that costs a cache miss, never a wrong hit.)
    """
    if isinstance(model, (str, os.PathLike)):
        h = hashlib.sha256()
        with open(model, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()[:16]
    h = hashlib.blake2b(digest_size=8)
    spec = getattr(model, "spec", None)
    h.update(repr(spec.to_dict() if spec is not None else type(model).__name__).encode())
    with torch.no_grad():
        for name, t in model.state_dict().items():
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


def feature_key(model_key: str, data_key: str, mean, std, input_size: int, layer: str = "fc7") -> str:
    """The name of one cached dataset pass: model, data, preprocessing and what was recorded."""
    prep = hashlib.blake2b(repr((tuple(map(float, mean)), tuple(map(float, std)), int(input_size),
                                 _CACHE_VERSION)).encode(), digest_size=4).hexdigest()
    return f"{layer}-{model_key}-{data_key}-{prep}"


def _features_dir() -> Path:
    d = cache_dir() / FEATURES_DIR
    d.mkdir(parents=True, exist_ok=True)
    return d


def _load_cached(key: str, n: int) -> dict[str, np.ndarray] | None:
    """The arrays stored under `key`, or None if absent or unreadable (a cache is only a cache)."""
    path = _features_dir() / f"{key}.npz"
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        warnings.warn(f"ignoring the damaged feature cache {path.name} ({e}); computing again")
        path.unlink(missing_ok=True)
        return None
    if any(len(a) != n for a in arrays.values()):
        return None
    os.utime(path)  # a hit counts as use: eviction below is least-recently-used by mtime
    return arrays


def _store_cached(key: str, arrays: dict[str, np.ndarray], keep: int) -> None:
    """Write atomically, then delete the least recently used files beyond `keep`."""
    d = _features_dir()

    def write(tmp):
        with open(tmp, "wb") as f:  # a file object: np.savez would append .npz to a bare path
            np.savez(f, **arrays)
    atomic_write_bytes(d / f"{key}.npz", write)
    files = sorted(d.glob("*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[max(1, keep):]:
        old.unlink(missing_ok=True)


# ---------------------------------------------------------------- one pass over a dataset

def _model_device(model: nn.Module, device) -> torch.device:
    if device is not None:
        device = D.pick(device)
        model.to(device)
        return device
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _dataset_pass(model: nn.Module, images: torch.Tensor, mean, std, input_size: int, record,
                  batch_size: int, device, progress) -> dict[str, np.ndarray]:
    """Run every image once (eval mode, no autograd) and keep what `record(acts)` returns per batch.

    The model's train/eval mode is restored afterwards, so a caller mid-training is unaffected.
    """
    if images.dim() != 4 or images.shape[1] != 3 or images.dtype != torch.uint8:
        raise ValueError(f"images must be uint8 (N, 3, H, W), got {images.dtype} {tuple(images.shape)}")
    if len(images) == 0:
        raise ValueError("no images to run")
    if min(images.shape[-2:]) < input_size:
        raise ValueError(f"images are {images.shape[-2]}x{images.shape[-1]}, smaller than the model's "
                         f"{input_size}x{input_size} input")
    dev = _model_device(model, device)
    was_training = model.training
    model.eval()
    n, parts = len(images), []
    try:
        with torch.inference_mode(), D.autocast(dev):
            for start in range(0, n, batch_size):
                batch = center_crop(images[start:start + batch_size], input_size)  # (B, 3, S, S) uint8
                x = normalize(D.to_input(batch, dev), mean, std)                     # (B, 3, S, S) float
                _, acts = model(x, return_activations=True)
                parts.append({k: (v.float() if v.is_floating_point() else v).cpu().numpy()
                              for k, v in record(acts).items()})
                if progress is not None:
                    progress(min(start + batch_size, n), n)
    finally:
        model.train(was_training)
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _cached_pass(model, images, mean, std, input_size, record, layer, batch_size, device, cache_key,
                 progress, cache, keep) -> dict[str, np.ndarray]:
    if cache:
        key = cache_key or feature_key(model_hash(model), data_hash(images), mean, std, input_size, layer)
        found = _load_cached(key, len(images))
        if found is not None:
            if progress is not None:
                progress(len(images), len(images))
            return found
    arrays = _dataset_pass(model, images, mean, std, input_size, record, batch_size, device, progress)
    if cache:
        _store_cached(key, arrays, keep)
    return arrays


def fc7_features(model: nn.Module, images_uint8: torch.Tensor, mean, std, input_size: int, batch_size: int = 64,
                 device=None, cache_key: str | None = None, progress=None, cache: bool = True,
                 keep: int = MAX_CACHE_FILES) -> np.ndarray:
    """(N, 3, H, W) uint8 images -> (N, 4096*width) float32 fc7 activations (after ReLU).

    Each image is centre-cropped to `input_size` and normalised with `mean`/`std` (0-1 units),
    as at test time. `cache_key` names the disk cache entry (default: `feature_key` of
    `model_hash(model)` and `data_hash(images)`); `progress(done, total)` is called per batch.
    `device` moves the model there; by default it runs where the model already is.
    """
    out = _cached_pass(model, images_uint8, mean, std, input_size, lambda acts: {"fc7": acts["fc7"]}, "fc7",
                       batch_size, device, cache_key, progress, cache, keep)
    return out["fc7"]


# ---------------------------------------------------------------- the 2-D map

class CosineUMAP:
    """L2-normalise -> PCA -> UMAP on exact Euclidean distances; `transform` places new rows.

    Euclidean distance between unit vectors is sqrt(2 - 2 cos), so neighbourhoods here are
    the cosine neighbourhoods `neighbours` returns.
    """

    def __init__(self, seed: int = 0, pca_dims: int = PCA_DIMS, **umap_kw):
        self.seed, self.pca_dims = seed, pca_dims
        self.umap_kw = {**UMAP_DEFAULTS, **umap_kw}
        self.timings: dict[str, float] = {}   # seconds per stage of the last fit, for the UI and benchmarks

    def fit_transform(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, 2) map coordinates; remembers what `transform` needs."""
        import umap  # ~2 s to import; only the Embed flow pays it
        from sklearn.decomposition import PCA

        x = _unit_rows(features)
        n, d = x.shape
        if n > MAX_MAP_POINTS:
            raise ValueError(f"{n} points is more than the {MAX_MAP_POINTS:,} this exact map holds; "
                             f"fit on a random subset and `place` the rest")
        if n < 4:
            raise ValueError(f"a map needs at least 4 points, got {n}")
        with _quiet_umap(), threadpool_limits(1, user_api="blas"):
            t0 = time.perf_counter()
            # Two power iterations, not sklearn's 7: on flowers' fc7 the 50 components explain
            # 73.0% instead of 73.3% of the variance, in 60% of the time.
            self.pca = PCA(min(self.pca_dims, n - 1, d), svd_solver="randomized", iterated_power=2,
                           random_state=self.seed)
            self.points = self.pca.fit_transform(x).astype(np.float32)    # (N, pca_dims)
            t1 = time.perf_counter()
            dist = _distances(self.points, self.points)                   # (N, N)
            t2 = time.perf_counter()
            kw = dict(self.umap_kw, n_neighbors=min(self.umap_kw["n_neighbors"], n - 1))
            self.umap = umap.UMAP(metric="precomputed", random_state=self.seed, **kw)
            coords = self.umap.fit_transform(dist).astype(np.float32)    # (N, 2)
        self.timings = dict(pca_s=t1 - t0, distances_s=t2 - t1, umap_s=time.perf_counter() - t2)
        return coords

    def transform(self, features: np.ndarray) -> np.ndarray:
        """(M, D) new features -> (M, 2), by UMAP's own `transform` against the fitted points."""
        with _quiet_umap(), threadpool_limits(1, user_api="blas"):
            q = self.pca.transform(_unit_rows(features)).astype(np.float32)        # (M, pca_dims)
            return self.umap.transform(_distances(q, self.points)).astype(np.float32)  # (M, 2)


def _unit_rows(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    x = x.reshape(1, -1) if x.ndim == 1 else x  # (D,) -> (1, D)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(M, K), (N, K) -> (M, N) Euclidean distances, by one matrix product."""
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * (a @ b.T)
    d = np.sqrt(np.maximum(d, 0.0, out=d))
    if a is b:
        np.fill_diagonal(d, 0.0)  # exact zeros: rounding must not make a point miss itself
    return d


@contextlib.contextmanager
def _quiet_umap():
    """Silence umap's notices that restate our choices (seeded => single thread; precomputed metric).

    (`catch_warnings` swaps process-wide filters; the worst a concurrent request sees is one
    umap notice printed or hidden.)
    """
    with warnings.catch_warnings():
        for msg in ("n_jobs value", "Transforming new data with precomputed metric",
                    "using precomputed metric; inverse_transform"):
            warnings.filterwarnings("ignore", message=msg)
        yield


@dataclass
class Map:
    """A fitted 2-D map of a dataset and everything needed to draw it and place new images."""
    coords: np.ndarray      # (N, 2) float32
    labels: np.ndarray      # (N,) int64
    classes: list[str]
    reducer: CosineUMAP
    features: np.ndarray    # (N, D) float32, what was fitted


def fit_map(features: np.ndarray, labels, classes: list[str], seed: int = 0, **umap_kw) -> Map:
    """UMAP of fc7 features; the same seed gives the same coordinates (single-threaded by design)."""
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    reducer = CosineUMAP(seed=seed, **umap_kw)
    coords = reducer.fit_transform(features)
    return Map(coords, labels, list(classes), reducer, features)


def place(map: Map, feature) -> np.ndarray:
    """One new image's (D,) or (1, D) features -> its (2,) position in a fitted map."""
    f = np.asarray(feature.detach().float().cpu() if isinstance(feature, torch.Tensor) else feature, np.float32)
    if f.size != map.features.shape[1]:
        raise ValueError(f"a feature of size {f.size} cannot go into a map of {map.features.shape[1]}-d features "
                         f"(was it computed by the same model?)")
    return map.reducer.transform(f.reshape(1, -1))[0]  # (1, D) -> (1, 2) -> (2,)


class MapCache:
    """The last few fitted maps, by key (e.g. the `feature_key` of their features).

    Owned by whoever serves requests (the app's state), not a module global. One lock
    around fitting: two visitors asking for the same map wait for one fit, not two.
    """

    def __init__(self, maxsize: int = 2):
        self.maxsize = maxsize
        self._maps: OrderedDict[str, Map] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_fit(self, features: np.ndarray, labels, classes: list[str], key: str | None = None,
                   seed: int = 0, **umap_kw) -> Map:
        """The cached map for (key, seed, options), fitting it on a miss. `key=None` hashes `features`."""
        k = f"{key or data_hash(np.asarray(features, dtype=np.float32))}|{seed}|{sorted(umap_kw.items())}"
        with self._lock:
            if k in self._maps:
                self._maps.move_to_end(k)
                return self._maps[k]
            m = fit_map(features, labels, classes, seed=seed, **umap_kw)
            self._maps[k] = m
            while len(self._maps) > self.maxsize:
                self._maps.popitem(last=False)
            return m


def scatter(map: Map, star: np.ndarray | None = None, title: str = "", star_label: str = "your image",
            size: tuple[float, float] = (7.0, 5.5)) -> Image.Image:
    """The map coloured by class, with a legend; `star` (2,) is drawn large on top."""
    fig = new_figure(*size)
    ax = fig.add_subplot()
    palette = colormaps["tab10" if len(map.classes) <= 10 else "tab20"]
    colours = [palette(i % palette.N) for i in range(len(map.classes))]
    for c, name in enumerate(map.classes):
        pts = map.coords[map.labels == c]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.7, color=colours[c], label=f"{name} ({len(pts)})", linewidths=0)
    if star is not None:
        ax.scatter([star[0]], [star[1]], marker="*", s=600, color="gold", edgecolors="black", linewidths=1.5,
                   label=star_label, zorder=5)
    legend = ax.legend(loc="best", fontsize=8, frameon=True)
    for handle, text in zip(legend.legend_handles, legend.get_texts()):  # legend markers at a readable size,
        handle.set_sizes([150 if text.get_text() == star_label else 30])  # not the plot's 6 or 600
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or "fc7 features, UMAP to 2-D (cosine)")
    return figure_to_image(fig)


# ---------------------------------------------------------------- nearest neighbours (Figure 4)

def neighbours(features: np.ndarray, query, k: int = 6, exclude=None) -> list[tuple[int, float]]:
    """The k dataset rows most cosine-similar to `query` (D,), best first, as (index, similarity).

    `exclude` (an index or indices) drops rows, e.g. the query's own image when it is in the set.
    """
    f = _unit_rows(features)                                                   # (N, D)
    q = _unit_rows(query.detach().float().cpu() if isinstance(query, torch.Tensor) else query)[0]  # (D,)
    sims = f @ q                                                               # (N,)
    if exclude is not None:
        sims[np.atleast_1d(np.asarray(exclude, dtype=np.int64))] = -np.inf
    k = min(k, int(np.isfinite(sims).sum()))
    top = np.argpartition(-sims, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    top = top[np.lexsort((top, -sims[top]))]  # by similarity, ties by index: stable across runs
    return [(int(i), float(sims[i])) for i in top]


def _hwc(image_chw) -> np.ndarray:
    a = image_chw.cpu().numpy() if isinstance(image_chw, torch.Tensor) else np.asarray(image_chw)
    return np.ascontiguousarray(a.transpose(1, 2, 0))  # (3, H, W) -> (H, W, 3)


def neighbour_gallery(images_uint8, indices, labels=None, classes=None,
                      size: int = 128) -> list[tuple[Image.Image, str]]:
    """(thumbnail, caption) pairs for a Gradio Gallery; `indices` may be ints or `neighbours` pairs."""
    out = []
    for item in indices:
        i, sim = (item if isinstance(item, (tuple, list)) else (item, None))
        thumb = Image.fromarray(_hwc(images_uint8[int(i)])).resize((size, size), Image.BILINEAR)
        parts = [f"#{int(i)}"]
        if labels is not None:
            lab = int(labels[int(i)])
            parts.append(classes[lab] if classes is not None else f"class {lab}")
        if sim is not None:
            parts.append(f"cos {sim:.3f}")
        out.append((thumb, " · ".join(parts)))
    return out


# ---------------------------------------------------------------- top patches per unit

@dataclass(frozen=True)
class Geometry:
    """Where a spatial layer's units look in the model's input.

    Unit (y, x) sees input rows start + y*jump ... start + y*jump + rf - 1 (columns alike);
    `start` is negative when earlier layers padded, as each padding shifts the grid by
    padding * jump of the layer before it.
    """
    rf: int          # receptive field, input pixels
    jump: int        # input pixels between neighbouring units
    start: int       # input coordinate of unit 0's first pixel
    size: int        # the layer's output side, units
    input_size: int

    def box(self, y: int, x: int) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1), end-exclusive, clipped to the input."""
        y0, x0 = self.start + y * self.jump, self.start + x * self.jump
        return (max(x0, 0), max(y0, 0), min(x0 + self.rf, self.input_size), min(y0 + self.rf, self.input_size))


def receptive_geometry(model: nn.Module, layer: str, input_size: int) -> Geometry:
    """Receptive field, jump and padding offset of `layer`, read from `alexnet.shapes.layer_table`."""
    spec = model.spec.to_dict()
    arch, num_classes = spec.pop("arch"), spec.pop("num_classes")
    rows = layer_table(arch, input_size, num_classes=num_classes, **{**spec, "pool": tuple(spec["pool"])})
    start, jump_before = 0, 1
    for row in rows:
        if row["jump"] is None:
            break
        start -= (row["padding"] or 0) * jump_before
        if row["layer"] == layer:
            return Geometry(row["receptive_field"], row["jump"], start, row["out_shape"][1], input_size)
        jump_before = row["jump"]
    raise ValueError(f"{layer!r} is not a spatial layer; choose one of "
                     f"{', '.join(r['layer'] for r in rows if r['jump'] is not None)}")


def top_patches(model: nn.Module, images_uint8: torch.Tensor, mean, std, input_size: int, unit: int, k: int = 9,
                layer: str = "conv5", batch_size: int = 64, device=None, cache_key: str | None = None,
                progress=None, cache: bool = True) -> dict:
    """The k dataset patches that excite `unit` of `layer` most, one per image, cropped by its receptive field.

    One pass records every unit's maximum and its position per image and is cached on disk,
    so after the first call any unit of the same layer is instant. One patch per image,
    because a unit's neighbouring positions in one photo would otherwise fill the grid.
    Returns patches (k, rf, rf, 3) uint8 (parts outside the input, which the net saw as
    zero padding, are filled with the mean colour), boxes (k, 4) as (x0, y0, x1, y1) in
    the model input (the centre `input_size` crop of each image), values (k,), indices (k,)
    and positions (k, 2) as the unit's (y, x) in the layer's map. `cache_key` is the same
    data+model key as for `fc7_features`; the layer is added to it here.
    """
    if layer not in LAYERS:
        raise KeyError(f"unknown layer {layer!r}")
    geo = receptive_geometry(model, layer, input_size)

    def record(acts):
        a = acts[layer]
        flat = a.flatten(2)                        # (B, C, H, W) -> (B, C, H*W)
        values, where = flat.max(dim=2)            # (B, C) each
        return {"values": values, "where": where.to(torch.int32)}
    table = _cached_pass(model, images_uint8, mean, std, input_size, record, f"{layer}max", batch_size, device,
                         cache_key and f"{layer}max-{cache_key}", progress, cache, MAX_CACHE_FILES)
    channels = table["values"].shape[1]
    if not 0 <= unit < channels:
        raise ValueError(f"{layer} has units 0..{channels - 1}, not {unit}")
    v = table["values"][:, unit]
    order = np.lexsort((np.arange(len(v)), -v))[:k]   # highest first, ties by image index
    fill = np.clip(np.round(np.asarray(mean, dtype=np.float64) * 255), 0, 255).astype(np.uint8)
    patches = np.empty((len(order), geo.rf, geo.rf, 3), dtype=np.uint8)
    patches[:] = fill
    boxes = np.zeros((len(order), 4), dtype=np.int64)
    positions = np.zeros((len(order), 2), dtype=np.int64)
    for j, i in enumerate(order):
        y, x = positions[j] = divmod(int(table["where"][i, unit]), geo.size)
        x0, y0, x1, y1 = boxes[j] = geo.box(y, x)
        img = _hwc(center_crop(images_uint8[int(i)], input_size))    # (S, S, 3)
        oy, ox = y0 - (geo.start + y * geo.jump), x0 - (geo.start + x * geo.jump)  # clipped-off margin
        patches[j, oy:oy + y1 - y0, ox:ox + x1 - x0] = img[y0:y1, x0:x1]
    return dict(patches=patches, boxes=boxes, values=v[order].astype(np.float32), indices=order.astype(np.int64),
                positions=positions, layer=layer, unit=unit, rf=geo.rf)
