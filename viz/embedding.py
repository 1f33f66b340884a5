"""Flow 3, "Embed": what the network's last hidden layer thinks is similar.

    feats = fc7_features(model, images, mean, std, 227)      # (N, 4096) float32, cached on disk
    m = fit_map(feats, labels, classes)                       # UMAP 2-D of the dataset (viz.fc7_map.Map)
    scatter(m, star=place(m, fc7_of_upload))                  # the upload drawn into the map
    map_neighbours(m, fc7_of_upload, k=6)                     # the paper's Figure 4, in cosine
    top_patches(model, images, mean, std, 227, unit=17)       # what one conv5 unit fires on

A pass over a dataset costs minutes on a CPU, so it runs through `alexnet.features` (the one
batched dataset pass) and its result is kept in that module's store, keyed by the model's
weights, the images and the preprocessing.
Fitted maps are cached in memory and on disk by a `MapCache` the caller owns (no module globals);
a map is plain arrays (viz.fc7_map), so the shipped model's map of the flowers pack ships with it.

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
import functools
import os
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image
from threadpoolctl import threadpool_limits
from torch import nn

from alexnet import features as fstore
from alexnet.data import DataError
from alexnet.errors import OptionError
from alexnet.images import center_crop
from alexnet.lru import LRU
from alexnet.weights import cache_dir
from alexnet.model import LAYERS
from alexnet.shapes import spec_table
from viz.fc7_map import Map, cached_map_path, load_map, map_neighbours, place, save_map  # noqa: F401 (re-exported)
from viz.plots import figure_to_image, new_figure

PCA_DIMS = 50                 # UMAP input: 80x fewer dims than fc7, 73% of flowers' fc7 variance
# 200 epochs is what umap-learn itself uses above 10k points; its 500 below that cost 2.5x the layout time.
UMAP_DEFAULTS = dict(n_neighbors=15, min_dist=0.1, n_epochs=200)
MAX_MAP_POINTS = 20_000       # the exact distance matrix is N^2 float32: 1.6 GB at this size


# ---------------------------------------------------------------- fc7 of a dataset

def fc7_features(model: nn.Module, images_uint8: torch.Tensor, mean, std, input_size: int, batch_size: int = 64,
                 device=None, cache_key: str | None = None, progress=None, cache: bool = True,
                 keep: int = fstore.MAX_CACHE_FILES) -> np.ndarray:
    """(N, 3, H, W) uint8 images -> (N, 4096*width) float32 fc7 activations (after ReLU).

    Each image is centre-cropped to `input_size` and normalised with `mean`/`std` (0-1 units),
    as at test time, by `alexnet.features.dataset_pass`. `cache_key` names the stored pass
    (default: `fc7_key` of the model and the pixels); `progress(done, total)` is called per batch.
    `device` moves the model there; by default it runs where the model already is.
    """
    key = (cache_key or fc7_key(model, fstore.data_hash(images_uint8), mean, std, input_size)) if cache else None
    out, _ = fstore.cached(key, len(images_uint8), lambda: fstore.dataset_pass(
        model, images_uint8, input_size, mean, std, record=fstore.record_fc7,
        batch_size=batch_size, device=device, progress=progress), keep=keep, progress=progress)
    return out["fc7"]


fc7_key = fstore.fc7_key          # the store's name for a model's fc7 over a dataset (shared with training)


# ---------------------------------------------------------------- the 2-D map

class CosineUMAP:
    """L2-normalise -> PCA -> UMAP on exact Euclidean distances.

    Euclidean distance between unit vectors is sqrt(2 - 2 cos), so neighbourhoods here are
    the cosine neighbourhoods `neighbours` returns.
    """

    def __init__(self, seed: int = 0, pca_dims: int = PCA_DIMS, **umap_kw):
        self.seed, self.pca_dims = seed, pca_dims
        self.umap_kw = {**UMAP_DEFAULTS, **umap_kw}
        self.timings: dict[str, float] = {}   # seconds per stage of the last fit, for the UI and benchmarks

    def fit_transform(self, features: np.ndarray) -> np.ndarray:
        """(N, D) features -> (N, 2) map coordinates; keeps the PCA (`self.pca`) and the projected rows
        (`self.points`), which is what placing new rows needs (viz.fc7_map.place)."""
        umap = import_umap()  # ~2 s to import; only the Embed flow pays it
        from sklearn.decomposition import PCA

        x = _unit_rows(features)
        n, d = x.shape
        if n > MAX_MAP_POINTS:
            raise ValueError(f"{n} points is more than the {MAX_MAP_POINTS:,} this exact map holds; "
                             f"fit on a random subset and `place` the rest")
        if n < 4:
            raise DataError(f"a map needs at least 4 images, got {n}")
        with _quiet_umap(), threadpool_limits(1, user_api="blas"):
            t0 = time.perf_counter()
            # Two power iterations, not sklearn's 7: on flowers' fc7 the 50 components explain
            # 73.0% instead of 73.3% of the variance, in 60% of the time.
            self.pca = PCA(min(self.pca_dims, n - 1, d), svd_solver="randomized", iterated_power=2,
                           random_state=self.seed)
            self.points = self.pca.fit_transform(x).astype(np.float32)    # (N, pca_dims)
            t1 = time.perf_counter()
            dist = pairwise_distances(self.points, self.points)                   # (N, N)
            t2 = time.perf_counter()
            kw = dict(self.umap_kw, n_neighbors=min(self.umap_kw["n_neighbors"], n - 1))
            coords = umap.UMAP(metric="precomputed", random_state=self.seed, **kw).fit_transform(dist)
            coords = coords.astype(np.float32)                               # (N, 2)
        self.timings = dict(pca_s=t1 - t0, distances_s=t2 - t1, umap_s=time.perf_counter() - t2)
        return coords


@functools.cache
def import_umap():
    """umap-learn, with its numba functions compiled once per machine, not once per process.

    umap-learn does not ask numba to cache its ~110 jitted functions, so every new process paid
    ~12 s of compilation before its first map (4.6 s warm). Turning on numba's on-disk cache for
    them (`Dispatcher.enable_caching`, before anything is compiled) and pointing it at the
    project's cache folder makes a cold start load machine code instead (~1 s). A function numba
    cannot cache only warns and compiles as before.
    """
    folder = cache_dir() / "numba"
    folder.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("NUMBA_CACHE_DIR", str(folder))     # read by numba at import (pynndescent's own caches)
    import numba
    import umap
    import umap.layouts
    import umap.spectral
    import umap.umap_
    import umap.utils
    from numba.core.dispatcher import Dispatcher

    numba.config.CACHE_DIR = os.environ["NUMBA_CACHE_DIR"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=numba.NumbaWarning)
        for module in (umap.umap_, umap.layouts, umap.utils, umap.spectral):
            for fn in vars(module).values():
                if isinstance(fn, Dispatcher) and fn._cache.__class__.__name__ == "NullCache":
                    fn.enable_caching()
    return umap


def _unit_rows(features) -> np.ndarray:
    x = np.asarray(features, dtype=np.float32)
    x = x.reshape(1, -1) if x.ndim == 1 else x  # (D,) -> (1, D)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def pairwise_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
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


def fit_map(features: np.ndarray, labels, classes: list[str], seed: int = 0, **umap_kw) -> Map:
    """UMAP of fc7 features; the same seed gives the same coordinates (single-threaded by design)."""
    features = np.asarray(features, dtype=np.float32)
    labels = np.asarray(labels.cpu() if isinstance(labels, torch.Tensor) else labels, dtype=np.int64)
    if len(labels) != len(features):
        raise ValueError(f"{len(features)} feature rows but {len(labels)} labels")
    reducer = CosineUMAP(seed=seed, **umap_kw)
    coords = reducer.fit_transform(features)
    pca = reducer.pca
    return Map(coords, labels, list(classes), pca.mean_.astype(np.float32), pca.components_.astype(np.float32),
               reducer.points, dict(timings=reducer.timings, n=len(features)))


class MapCache:
    """The last few fitted maps, by key (the `fc7_key` of their features), in memory and on disk.

    Owned by whoever serves requests (the app's state), not a module global. A keyed map is also
    saved under cache_dir()/maps/ (viz.fc7_map), so the next process draws it without fitting.
    Fitting holds the cache's lock: two visitors asking for the same map wait for one fit, not two.
    """

    def __init__(self, maxsize: int = 2, disk: bool = True):
        self._maps: LRU[Map] = LRU(maxsize)
        self.disk = disk

    def get(self, key: str, seed: int = 0, **umap_kw) -> Map | None:
        """The map for (key, seed, options) if it is in memory or on disk, without fitting."""
        k = self._key(key, seed, umap_kw)
        found = self._maps.get(k)
        if found is None and self.disk:
            found = load_map(cached_map_path(k))
            if found is not None:
                self._maps.put(k, found)
        return found

    def get_or_fit(self, features: np.ndarray, labels, classes: list[str], key: str | None = None,
                   seed: int = 0, **umap_kw) -> Map:
        """The cached map for (key, seed, options), fitting it on a miss. `key=None` hashes `features`."""
        key = key or fstore.data_hash(np.asarray(features, dtype=np.float32))
        found = self.get(key, seed, **umap_kw)
        if found is not None:
            return found
        k = self._key(key, seed, umap_kw)

        def fit():
            m = fit_map(features, labels, classes, seed=seed, **umap_kw)
            if self.disk:
                save_map(cached_map_path(k), m)
            return m
        return self._maps.get_or_make(k, fit)

    @staticmethod
    def _key(key: str, seed: int, umap_kw: dict) -> str:
        opts = "-".join(f"{n}{v}" for n, v in sorted(umap_kw.items()))
        return f"{key}-s{seed}" + (f"-{opts}" if opts else "")


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
                      size: int = 128, names: list[str] | None = None) -> list[tuple[Image.Image, str]]:
    """(thumbnail, caption) pairs for a Gradio Gallery; `indices` may be ints or `neighbours` pairs.
    `names` (one caption part per image, e.g. "roses, by A. Photographer") replaces the class name."""
    out = []
    for item in indices:
        i, sim = (item if isinstance(item, (tuple, list)) else (item, None))
        thumb = Image.fromarray(_hwc(images_uint8[int(i)])).resize((size, size), Image.BILINEAR)
        parts = [f"#{int(i)}"]
        if names is not None:
            parts.append(names[int(i)])
        elif labels is not None:
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
    rows = spec_table(model.spec.to_dict(), input_size)
    start, jump_before = 0, 1
    for row in rows:
        if row["jump"] is None:
            break
        start -= (row["padding"] or 0) * jump_before
        if row["layer"] == layer:
            return Geometry(row["receptive_field"], row["jump"], start, row["out_shape"][1], input_size)
        jump_before = row["jump"]
    raise OptionError(f"{layer!r} is not a spatial layer; choose one of "
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
        raise OptionError(f"unknown layer {layer!r}; layers are {', '.join(LAYERS)}")
    geo = receptive_geometry(model, layer, input_size)

    def record(m, x):
        a = m(x, return_activations=True)[1][layer]
        flat = a.flatten(2)                        # (B, C, H, W) -> (B, C, H*W)
        values, where = flat.max(dim=2)            # (B, C) each
        return {"values": values, "where": where.to(torch.int32)}
    key = None
    if cache:
        key = (f"{layer}max-{cache_key}" if cache_key else
               fstore.store_key(f"{layer}max", fstore.model_hash(model), fstore.data_hash(images_uint8), mean, std, input_size))
    table, _ = fstore.cached(key, len(images_uint8), lambda: fstore.dataset_pass(
        model, images_uint8, input_size, mean, std, record=record, batch_size=batch_size, device=device,
        progress=progress), progress=progress)
    channels = table["values"].shape[1]
    if not 0 <= unit < channels:
        raise OptionError(f"{layer} has units 0..{channels - 1}, not {unit}")
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


def patch_gallery(top: dict, labels=None, classes=None, size: int = 96,
                  names: list[str] | None = None) -> list[tuple[Image.Image, str]]:
    """`top_patches`' result -> (patch enlarged to `size`, "image #i · class · activation") for a Gallery;
    `names` (one caption part per image) replaces the class name, as in `neighbour_gallery`."""
    out = []
    for patch, i, v in zip(top["patches"], top["indices"], top["values"]):
        name = [names[int(i)]] if names is not None else \
            [classes[int(labels[int(i)])]] if labels is not None and classes else []
        parts = [f"#{int(i)}"] + name + [f"{v:.2f}"]
        out.append((Image.fromarray(patch).resize((size, size), Image.NEAREST), " · ".join(parts)))
    return out
