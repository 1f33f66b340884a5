"""The fc7 map of the data in use, per model: one owner for the page (the Embeddings tab draws it, the Two-models
tab places a photo on each model's map, the tour reads the shipped one).

A map is drawn at once when it is ready (the one shipped with the flowers model for the pack, or one in memory or
on disk), else built: the network's pass over every photo (a job of app.compute, kept in the feature store) and a
UMAP fit (kept on disk per model and data).
"""
from __future__ import annotations

import functools

from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from alexnet.lru import LRU
from alexnet.pack import read_pack
from app.i18n import current_lang, tr
from app.state import FLOWERS
from viz.embedding import MapCache, fc7_features, scatter
from viz.fc7_map import SHIPPED_MAP, Map, load_map, place, shipped_map_for


class Embedder:
    """The fc7 features and maps per (model, data in use), bounded; one per page (Page.embedder)."""

    def __init__(self, datasets, compute):
        self.datasets, self.compute = datasets, compute
        self.maps = MapCache(maxsize=2)
        self._features: LRU = LRU(maxsize=2)
        self._plots: LRU = LRU(maxsize=4)

    def dataset(self, progress):
        return self.datasets.decoded(progress)

    def plot(self, m: Map, star, title: str):
        """The map drawn; without a star (the tab opening) the picture is kept, so opening is a lookup."""
        if star is not None:
            return scatter(m, star, title=title)
        return self._plots.get_or_make((hash(m.coords.tobytes()), title), lambda: scatter(m, None, title=title))

    def prewarm(self) -> None:
        """Draw the shipped map once at start-up (matplotlib's first figure costs ~0.5 s), so the tab opens
        with a picture ready."""
        m = load_map(SHIPPED_MAP)
        if m is not None:
            self.plot(m, None, map_title(m))

    def key(self, loaded, d) -> str:
        """The feature store's name for this model's pass over the dataset (top patches add their layer)."""
        return self.compute.fc7_key(loaded, d.key or str(len(d.paths)))

    def ready_map(self, loaded) -> Map | None:
        """The map of (this model, the data in use) if it can be drawn at once: the one shipped with the
        flowers model for the pack, else one in memory or on disk; None when it must be computed."""
        src = self.datasets.source()
        if not src.is_pack:
            return None if self.datasets.peek() is None else self.maps.get(self.key(loaded, self.datasets.peek()))
        pack = read_pack(src.path)
        if loaded.key == FLOWERS:
            found = shipped_map_for(shipped_sha256(), pack.data_key())
            if found is not None:
                return found
        return self.maps.get(self.compute.fc7_key(loaded, pack.data_key()))

    def features(self, loaded, progress):
        d = self.dataset(progress)
        m = loaded.meta
        key, lang = self.key(loaded, d), current_lang()     # read here: the job's thread has no request
        feats = self._features.get(key)
        if feats is None:                       # a dataset pass: a job, on the model's replica
            feats = self._features.get_or_make(key, lambda: self.compute.job(
                loaded, fc7_features, d.images, m["mean"], m["std"], m["input_size"], cache_key=key,
                progress=lambda done, t: progress(0.4 + 0.4 * done / max(t, 1), desc=tr(lang, "emb_fc7_progress", done=done, total=t))))
        return key, feats, d

    def build_map(self, loaded, progress) -> Map:
        found = self.ready_map(loaded)
        if found is not None:
            return found
        fkey, feats, d = self.features(loaded, progress)
        progress(0.85, desc=tr(current_lang(), "emb_fitting"))
        return self.maps.get_or_fit(feats, d.labels.numpy(), d.classes, key=fkey)

    def star(self, loaded, m: Map, upload):
        """Where an upload lands on map `m`: its fc7 (the page's one forward pass of it) placed among the photos',
        and that fc7 for its neighbours."""
        _, acts, _, _ = self.compute.forward(loaded, upload)
        q = acts["fc7"][0].numpy()
        return place(m, q), q


@functools.cache
def shipped_sha256() -> str:
    return sha256_file(SHIPPED)


def captions(d) -> list[str]:
    """Per photo: its class, and for the flowers pack its photographer (CC-BY asks for the credit)."""
    credits = d.extra.get("credits")
    lang = current_lang()
    return [d.classes[int(c)] + (tr(lang, "emb_by", who=credits[i].split(' - ')[0]) if credits else "")
            for i, c in enumerate(d.labels.tolist())]


def map_title(m: Map) -> str:
    return f"fc7 (UMAP), n = {len(m.coords):,}"      # drawn into the picture: in no language, so no font problem
