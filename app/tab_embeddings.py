"""Embeddings: the flower set in fc7 space (UMAP), your photo as a star, and its nearest neighbours."""
from __future__ import annotations

import threading

import gradio as gr
import torch

from alexnet.lru import LRU
from alexnet.model import LAYERS, default_input_size
from alexnet.shapes import layer_table
from app import datasets
from app.context import Page
from app.embedder import captions, map_title
from app.i18n import current_lang, t, tr
from app.ui import friendly
from viz.embedding import neighbour_gallery, patch_gallery, top_patches
from viz.fc7_map import Map, map_neighbours
from viz.feature_vis import maximise
from viz.plots import overlay


UNITS = layer_table("paper", default_input_size("paper"))[LAYERS.index("conv5")]["out_shape"][0]   # 256
def build(page: Page) -> None:
    emb = page.embedder
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
            star, q = emb.star(loaded, m, path)
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
