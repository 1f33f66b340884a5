"""Embeddings: the flower set in fc7 space (UMAP), your photo as a star, and its nearest neighbours."""
from __future__ import annotations

import functools
import threading

import gradio as gr
import torch

from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from alexnet.lru import LRU
from alexnet.model import LAYERS, default_input_size
from alexnet.pack import read_pack
from alexnet.shapes import layer_table
from app import datasets
from app.context import Page
from app.i18n import current_lang, t, tr
from app.state import FLOWERS
from app.ui import friendly
from viz.embedding import MapCache, fc7_features, neighbour_gallery, patch_gallery, scatter, top_patches
from viz.fc7_map import SHIPPED_MAP, Map, load_map, map_neighbours, place, shipped_map_for
from viz.feature_vis import maximise
from viz.plots import overlay


class Embedder:
    """The fc7 features and maps per (model, data in use), bounded; owned by the page's Embeddings tab."""

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


@functools.cache
def shipped_sha256() -> str:
    return sha256_file(SHIPPED)


def captions(d) -> list[str]:
    """Per photo: its class, and for the flowers pack its photographer (CC-BY asks for the credit)."""
    credits = d.extra.get("credits")
    lang = current_lang()
    return [d.classes[int(c)] + (tr(lang, "emb_by", who=credits[i].split(' - ')[0]) if credits else "")
            for i, c in enumerate(d.labels.tolist())]


UNITS = layer_table("paper", default_input_size("paper"))[LAYERS.index("conv5")]["out_shape"][0]   # 256
def map_title(m: Map) -> str:
    return f"fc7 (UMAP), n = {len(m.coords):,}"      # drawn into the picture: in no language, so no font problem


def build(page: Page) -> None:
    emb = Embedder(page.datasets, page.compute)
    threading.Thread(target=emb.prewarm, daemon=True, name="embeddings-prewarm").start()
    gr.Markdown(t("embeddings_intro"))
    datasets.row(page)
    with gr.Row():
        go = gr.Button(t("embeddings_build"), variant="primary")
        k = gr.Slider(1, 12, value=6, step=1, label=t("embeddings_neighbours"))
    status = gr.Markdown(elem_id="embed-status")
    plot = gr.Image(label=t("embeddings_map"), type="pil", interactive=False, elem_id="umap")
    gallery = gr.Gallery(label=t("embeddings_neighbours_gallery"), columns=6, height="auto",
                         elem_id="neighbours")
    credit = gr.Markdown(elem_id="neighbour-credit")

    def view(loaded, m: Map, path, k_n, progress):
        """The map drawn, with the upload as a star and its neighbours, and the sentence that goes with it."""
        star, items, note = None, [], ""
        n = len(m.coords)
        lang = current_lang()
        text = page.datasets.line(lang) + "\n\n" + tr(lang, "emb_map", n=f"{n:,}", k=len(m.classes),
                                                         classes=", ".join(m.classes))
        if m.info.get("model_sha256"):
            text += tr(lang, "emb_map_shipped")
        if path:
            d = emb.dataset(progress)
            _, acts, _, _ = page.compute.forward(loaded, path)
            q = acts["fc7"][0].numpy()
            star = place(m, q)
            near = map_neighbours(m, q, k=int(k_n))
            names = captions(d)
            items = neighbour_gallery(d.images, near, names=names, size=128)
            note = tr(lang, "emb_pack_credit") if d.extra.get("credits") else ""
        else:
            text += tr(lang, "emb_upload")
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return text, emb.plot(m, star, map_title(m)), items, note

    @friendly
    def run(path, key, k_n, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        return view(loaded, emb.build_map(loaded, progress), path, k_n, progress)

    @friendly
    def on_open(path, key, k_n, progress=gr.Progress()):
        """Opening the tab draws the map when it is ready (shipped or cached); else it says what a build costs."""
        loaded = page.registry.get(key, progress)
        m = emb.ready_map(loaded)
        if m is None:
            lang = current_lang()
            return (page.datasets.line(lang) + "\n\n" + tr(lang, "emb_no_map")
                    + (f"\n\n{loaded.notice}" if loaded.notice else "")), None, [], ""
        shown = view(loaded, m, path, k_n, progress)
        page.datasets.warm()                   # the pack's photos for the neighbours, decoded while the visitor looks
        return shown

    outs = [status, plot, gallery, credit]
    go.click(run, [page.image, page.model_key, k], outs, api_name=False)
    page.tabs["embeddings"].select(on_open, [page.image, page.model_key, k], outs, api_name=False)

    with gr.Accordion(t("embeddings_unit_open"), open=False):
        with gr.Row():
            unit = gr.Slider(0, UNITS - 1, value=0, step=1, label=t("embeddings_unit"), scale=3,
                             elem_id="unit")
            patches_btn = gr.Button(t("embeddings_patches_show"), scale=1)
            vis_btn = gr.Button(t("embeddings_vis_show"), scale=1)
            vis_stop = gr.Button(t("embeddings_vis_cancel"), variant="stop", scale=0)
        unit_status = gr.Markdown(elem_id="unit-status")
        patches = gr.Gallery(label=t("embeddings_patches"),
                             columns=9, height="auto", elem_id="top-patches")
        with gr.Row():
            unit_map = gr.Image(label=t("embeddings_unit_map"), type="pil", interactive=False,
                                elem_id="unit-map")
            vis_img = gr.Image(label=t("embeddings_vis"), type="pil",
                               interactive=False, elem_id="feature-vis")
        vis_text = gr.Markdown(elem_id="feature-vis-text")

    @friendly
    def show_unit(path, key, unit_v, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        d = emb.dataset(progress)
        m, u, lang = loaded.meta, int(unit_v), current_lang()

        # a dataset pass (once per model, then read from the feature store): a job
        top = page.compute.job(loaded, top_patches, d.images, m["mean"], m["std"], m["input_size"], unit=u, k=9,
                               cache_key=emb.key(loaded, d),
                               progress=lambda done, t: progress(0.4 + 0.5 * done / max(t, 1),
                                                                 desc=tr(lang, "emb_maxima", done=done, total=t)))
        text = tr(lang, "emb_unit", u=u, rf=top["rf"], top=f"{top['values'][0]:.2f}", i=int(top["indices"][0]))
        picture = None
        if path:
            _, acts, x, _ = page.compute.forward(loaded, path)
            a = acts["conv5"][0, u].numpy()                            # (13, 13) at 227
            picture = overlay(loaded.seen(x), a)
            text += tr(lang, "emb_unit_photo", most=f"{a.max():.2f}")
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return text, patch_gallery(top, names=captions(d)), picture

    patches_btn.click(show_unit, [page.image, page.model_key, unit], [unit_status, patches, unit_map], api_name=False)

    visuals: LRU = LRU(32)                        # (model fingerprint, unit) -> FeatureVis
    stops: dict[str, threading.Event] = {}        # visitor session -> its running optimisation's stop flag

    @friendly
    def visualise(key, unit_v, request: gr.Request, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        u, lang = int(unit_v), current_lang()
        cache_key = (page.compute.model_key(loaded), u)
        found = visuals.get(cache_key)
        if found is None:                         # a job on the model's replica: explanations need not wait for it
            stop = stops[request.session_hash] = threading.Event()
            try:
                found = page.compute.job(loaded, maximise, "conv5", u, generator=torch.Generator().manual_seed(u),
                                         cancel=stop, mean=loaded.meta["mean"], std=loaded.meta["std"],
                                         progress=lambda s, n: progress(s / n, desc=tr(lang, "emb_vis_progress", s=s, n=n)))
            finally:
                stops.pop(request.session_hash, None)
            if not found.cancelled:
                visuals.put(cache_key, found)
        text = (tr(lang, "emb_vis", u=u, start=f"{found.start_activation:.2f}", end=f"{found.final_activation:.2f}",
                   steps=found.steps, seconds=f"{found.seconds:.0f}")
                + (tr(lang, "emb_vis_cancelled") if found.cancelled else ""))
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return found.image, text

    def cancel_visual(request: gr.Request):
        stop = stops.get(request.session_hash)
        if stop is not None:
            stop.set()

    vis_btn.click(visualise, [page.model_key, unit], [vis_img, vis_text], api_name="feature_visualisation",
                  concurrency_limit=1,
                  concurrency_id="feature-vis")
    vis_stop.click(cancel_visual, None, None, api_name=False, concurrency_limit=None)
