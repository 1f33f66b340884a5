"""A fitted fc7 map as plain arrays: placing a new photo, its neighbours, and the map on disk.

    m = load_map(SHIPPED_MAP)                       # the shipped model's map of the flowers pack: no fit, no numba
    xy = place(m, fc7_of_upload)                    # (2,) where the upload lands
    near = map_neighbours(m, fc7_of_upload, k=6)    # [(row, cosine), ...] best first

Everything a map needs after fitting is a few arrays: the 2-D coordinates, the labels, and the PCA basis
its rows were projected with (a centre and 50 components) with the projected rows. So a map is saved as
safetensors (arrays only, never a pickle), shipped beside the model for the flowers pack, and cached on
disk per (model, data) for any other model, and a second visit draws it without a dataset pass or a fit.

Placement works in that PCA space, the way umap-learn's `transform` begins: the k nearest rows, weighted
by UMAP's own smooth-kNN kernel exp(-(d - rho) / sigma) with sigma chosen so the weights sum to log2(k),
and the new point set at the weighted mean of their coordinates. (umap-learn then runs an optimisation
from there; it needs the fitted UMAP object, which only a pickle could keep.) A photo of the map itself
lands on its own point, and a new photo lands among the photos it resembles. Neighbours are ranked in the
same space; for unit rows, Euclidean distance d there approximates sqrt(2 - 2 cos), so the cosine shown is
1 - d^2 / 2 (exact when the 50 components hold the whole difference).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from alexnet.files import ASSETS, atomic_write_bytes, cache_dir, read_arrays

SHIPPED_MAP = ASSETS / "flowers_map.safetensors"
FORMAT = "alexnet-explainer/fc7-map/1"
PLACE_K = 15                # neighbours that place a new point: UMAP_DEFAULTS' n_neighbors
MAPS_DIR = "maps"           # under cache_dir(): one file per (model, data, preprocessing)


@dataclass
class Map:
    """A fitted 2-D map of a dataset and what is needed to draw it and place new images."""
    coords: np.ndarray          # (N, 2) float32
    labels: np.ndarray          # (N,) int64
    classes: list[str]
    centre: np.ndarray          # (D,) float32: the PCA mean of the unit-length feature rows
    components: np.ndarray      # (K, D) float32: the PCA directions
    points: np.ndarray          # (N, K) float32: the dataset's rows in PCA space
    info: dict = field(default_factory=dict)   # what made it: model, data, timings

    @property
    def dims(self) -> int:
        return self.centre.shape[0]

    def project(self, features) -> np.ndarray:
        """(D,) or (M, D) features -> (M, K), as the dataset's rows were."""
        f = np.asarray(features, dtype=np.float32)
        f = f.reshape(1, -1) if f.ndim == 1 else f                                    # (D,) -> (1, D)
        if f.shape[1] != self.dims:
            raise ValueError(f"a feature of size {f.shape[1]} cannot go into a map of {self.dims}-d features "
                             f"(was it computed by the same model?)")
        f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
        return (f - self.centre) @ self.components.T                                 # (M, K)


def _as_numpy(feature) -> np.ndarray:
    if hasattr(feature, "detach"):                        # a torch tensor
        feature = feature.detach().float().cpu().numpy()
    return np.asarray(feature, dtype=np.float32)


def _distances(m: Map, feature) -> np.ndarray:
    q = m.project(_as_numpy(feature))[0]                                               # (K,)
    return np.sqrt(np.maximum(((m.points - q) ** 2).sum(1), 0.0))                       # (N,)


def smooth_knn_weights(d: np.ndarray, iterations: int = 64) -> np.ndarray:
    """UMAP's membership strengths for one point's sorted neighbour distances d (k,): exp(-(d - d0) / sigma),
    sigma found by bisection so that they sum to log2(k)."""
    k = len(d)
    target = np.log2(max(k, 2))
    gaps = np.maximum(d - d[0], 0.0)
    lo, hi = 1e-12, max(float(gaps.max()), 1e-6) * 1e3
    for _ in range(iterations):
        sigma = (lo * hi) ** 0.5
        if np.exp(-gaps / sigma).sum() > target:
            hi = sigma
        else:
            lo = sigma
    return np.exp(-gaps / ((lo * hi) ** 0.5))


def place(m: Map, feature, k: int = PLACE_K) -> np.ndarray:
    """One new image's (D,) features -> its (2,) position: the kernel-weighted mean of its k nearest rows."""
    d = _distances(m, feature)
    k = min(k, len(d))
    near = np.argsort(d, kind="stable")[:k]
    w = smooth_knn_weights(d[near])
    return (w[:, None] * m.coords[near]).sum(0) / w.sum()                                # (2,)


def map_neighbours(m: Map, feature, k: int = 6, exclude=None) -> list[tuple[int, float]]:
    """The k rows nearest `feature` in the map's PCA space, best first, as (row, approximate cosine)."""
    d = _distances(m, feature)
    if exclude is not None:
        d[np.atleast_1d(np.asarray(exclude, dtype=np.int64))] = np.inf
    k = min(k, int(np.isfinite(d).sum()))
    near = np.lexsort((np.arange(len(d)), d))[:k]           # nearest first, ties by row: stable across runs
    return [(int(i), float(1.0 - d[i] ** 2 / 2)) for i in near]


# ---------------------------------------------------------------- on disk

def save_map(path: Path, m: Map) -> None:
    """Arrays only (safetensors), written atomically; components in float16 (half the bytes, same map)."""
    from safetensors.numpy import save_file
    arrays = dict(coords=m.coords.astype(np.float32), labels=m.labels.astype(np.int64),
                  centre=m.centre.astype(np.float32), components=m.components.astype(np.float16),
                  points=m.points.astype(np.float32))
    arrays = {k: np.ascontiguousarray(v) for k, v in arrays.items()}   # safetensors writes memory order as is
    meta = dict(format=FORMAT, classes=json.dumps(m.classes), info=json.dumps(m.info))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(Path(path), lambda tmp: save_file(arrays, tmp, metadata=meta))


def load_map(path: Path) -> Map | None:
    """The map saved at `path`, or None when there is none (or it is damaged: a cache is only a cache)."""
    found = read_arrays(path, FORMAT)
    if found is None:
        return None
    meta, a = found
    try:
        return Map(a["coords"], a["labels"], json.loads(meta["classes"]), a["centre"],
                   a["components"].astype(np.float32), a["points"], json.loads(meta.get("info") or "{}"))
    except (ValueError, KeyError) as e:                           # readable, but not all of a map
        import warnings
        warnings.warn(f"ignoring the unreadable map {Path(path).name} ({e})")
        return None


def cached_map_path(key: str) -> Path:
    """Where the map of one (model, data, preprocessing) pass, named by its feature-store key, is kept."""
    return cache_dir() / MAPS_DIR / f"{key}.safetensors"


def shipped_map_for(model_sha256: str, data_key: str) -> Map | None:
    """The map shipped in assets/, if it was made by this model file on this data; else None."""
    m = load_map(SHIPPED_MAP)
    if m is None or m.info.get("model_sha256") != model_sha256 or m.info.get("data_key") != data_key:
        return None
    return m


if __name__ == "__main__":       # the rebuild command; it runs the network and UMAP, which this module does not import
    from viz.fc7_map_build import main
    main()
