"""Embeddings: the flower set in fc7 space (UMAP), your photo as a star, and its nearest neighbours."""
from __future__ import annotations

import copy
import threading

import gradio as gr
import torch

from alexnet.data import decode_folder, find_data_dir
from alexnet.features import model_hash
from alexnet.lru import LRU
from alexnet.model import LAYERS, default_input_size
from alexnet.shapes import layer_table
from app.ui import Page, friendly
from viz.embedding import (MapCache, fc7_features, fc7_key, neighbour_gallery, neighbours, patch_gallery, place, scatter,
                           top_patches)
from viz.feature_vis import maximise
from viz.plots import overlay


class Embedder:
    """The dataset (decoded once) and the fc7 features per model, bounded; owned by the page."""

    def __init__(self, data: str | None, lanes):
        self.data, self.lanes = data, lanes
        self.maps = MapCache(maxsize=2)
        self._decoded = None
        self._features: LRU = LRU(maxsize=2)
        self._lock = threading.Lock()

    def dataset(self, progress):
        with self._lock:
            if self._decoded is None:
                root = find_data_dir(self.data)
                self._decoded = decode_folder(root, progress=lambda d, t: progress(0.4 * d / max(t, 1),
                                                                                   desc=f"decoding images {d}/{t}"))
            return self._decoded

    @staticmethod
    def key(loaded, d) -> str:
        """The feature store's name for this model's pass over the dataset (top patches add their layer)."""
        m = loaded.meta
        return fc7_key(loaded.model, d.key or str(len(d.paths)), m["mean"], m["std"], m["input_size"])

    def features(self, loaded, progress):
        d = self.dataset(progress)
        m = loaded.meta
        key = self.key(loaded, d)
        feats = self._features.get(key)
        if feats is None:                       # a dataset pass: the slow lane's work, on its copy of the model

            def work(who):
                with who.lock:
                    return self._features.get_or_make(key, lambda: fc7_features(
                        who.model, d.images, m["mean"], m["std"], m["input_size"], cache_key=key,
                        progress=lambda done, t: progress(0.4 + 0.4 * done / max(t, 1), desc=f"fc7 features {done}/{t}")))
            feats = self.lanes.run_slow(loaded, work)
        return key, feats, d


UNITS = layer_table("paper", default_input_size("paper"))[LAYERS.index("conv5")]["out_shape"][0]   # 256


def build(page: Page) -> None:
    emb = Embedder(page.data, page.lanes)
    gr.Markdown("Every flower photo goes through the network once; its 4096 fc7 activations are squeezed to 2-D "
                "with UMAP. Photos the network finds similar land close together. The paper's Figure 4 makes the "
                "same point with nearest neighbours: they share a class even when their pixels differ.")
    with gr.Row():
        go = gr.Button("Build the map (first time: decodes the dataset and runs the network on it)", variant="primary")
        k = gr.Slider(1, 12, value=6, step=1, label="Neighbours")
    status = gr.Markdown(elem_id="embed-status")
    plot = gr.Image(label="fc7 space (UMAP)", type="pil", interactive=False, elem_id="umap")
    gallery = gr.Gallery(label="Nearest neighbours of your photo in fc7 space (cosine)", columns=6, height="auto")

    @friendly
    def run(path, key, k_n, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        fkey, feats, d = emb.features(loaded, progress)
        progress(0.85, desc="fitting UMAP")
        m = emb.maps.get_or_fit(feats, d.labels.numpy(), d.classes, key=fkey)
        star, items = None, []
        text = f"{len(d.paths):,} images, {len(d.classes)} classes ({', '.join(d.classes)})"
        if d.skipped:
            text += f"; {len(d.skipped)} unreadable files skipped"
        if path:
            _, acts, _, _ = page.registry.forward(loaded, path)
            q = acts["fc7"][0].numpy()
            star = place(m, q)
            near = neighbours(feats, q, k=int(k_n))
            items = neighbour_gallery(d.images, [i for i, _ in near], d.labels.numpy(), d.classes)
            items = [(img, f"{cap} · cos {s:.2f}") for (img, cap), (_, s) in zip(items, near)]
        else:
            text += ". Upload a photo in the first tab to place it on the map."
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return text, scatter(m, star, title=f"fc7 of {len(d.paths):,} images"), items

    go.click(run, [page.image, page.model_key, k], [status, plot, gallery], api_name=False)

    with gr.Accordion("One conv5 unit: the dataset patches that excite it most, and its map on your photo",
                      open=False):
        with gr.Row():
            unit = gr.Slider(0, UNITS - 1, value=0, step=1, label=f"conv5 unit (0-{UNITS - 1})", scale=3,
                             elem_id="unit")
            patches_btn = gr.Button("Show its top patches", scale=1)
            vis_btn = gr.Button("Synthesise what it looks for (about 10 s)", scale=1)
            vis_stop = gr.Button("Cancel", variant="stop", scale=0)
        unit_status = gr.Markdown(elem_id="unit-status")
        patches = gr.Gallery(label="Its 9 highest-activating dataset patches (receptive-field crops, one per photo)",
                             columns=9, height="auto", elem_id="top-patches")
        with gr.Row():
            unit_map = gr.Image(label="The unit's activation on your photo", type="pil", interactive=False,
                                elem_id="unit-map")
            vis_img = gr.Image(label="Feature visualisation: an image optimised to excite the unit", type="pil",
                               interactive=False, elem_id="feature-vis")
        vis_text = gr.Markdown(elem_id="feature-vis-text")

    @friendly
    def show_unit(path, key, unit_v, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        d = emb.dataset(progress)
        m, u = loaded.meta, int(unit_v)

        def work(who):                          # a dataset pass (once per model): the slow lane's work
            with who.lock:
                return top_patches(who.model, d.images, m["mean"], m["std"], m["input_size"], unit=u, k=9,
                                   cache_key=emb.key(loaded, d),
                                   progress=lambda done, t: progress(0.4 + 0.5 * done / max(t, 1),
                                                                     desc=f"conv5 maxima {done}/{t} (once per model)"))
        top = page.lanes.run_slow(loaded, work)
        text = (f"conv5 unit {u}: receptive field {top['rf']}x{top['rf']} px; strongest response "
                f"{top['values'][0]:.2f} on image #{int(top['indices'][0])}.")
        picture = None
        if path:
            _, acts, x, _ = page.registry.forward(loaded, path)
            a = acts["conv5"][0, u].numpy()                            # (13, 13) at 227
            picture = overlay(loaded.seen(x), a)
            text += f" On your photo: at most {a.max():.2f}."
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return text, patch_gallery(top, d.labels, d.classes), picture

    patches_btn.click(show_unit, [page.image, page.model_key, unit], [unit_status, patches, unit_map], api_name=False)

    visuals: LRU = LRU(32)                        # (model fingerprint, unit) -> FeatureVis
    stops: dict[str, threading.Event] = {}        # visitor session -> its running optimisation's stop flag

    @friendly
    def visualise(key, unit_v, request: gr.Request, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        u = int(unit_v)
        with loaded.lock:                         # a private copy: explanations need not wait 15 s for it
            cache_key = (model_hash(loaded.model), u)
            found = visuals.get(cache_key)
            model = None if found is not None else copy.deepcopy(loaded.model)
        if found is None:
            stop = stops[request.session_hash] = threading.Event()
            try:
                found = maximise(model, "conv5", u, generator=torch.Generator().manual_seed(u), cancel=stop,
                                 mean=loaded.meta["mean"], std=loaded.meta["std"],
                                 progress=lambda s, n: progress(s / n, desc=f"optimising the image, step {s}/{n}"))
            finally:
                stops.pop(request.session_hash, None)
            if not found.cancelled:
                visuals.put(cache_key, found)
        text = (f"conv5 unit {u}: mean activation {found.start_activation:.2f} on the random start, "
                f"{found.final_activation:.2f} after {found.steps} steps ({found.seconds:.0f} s)."
                + (" **Cancelled**: the image so far." if found.cancelled else ""))
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return found.image, text

    def cancel_visual(request: gr.Request):
        stop = stops.get(request.session_hash)
        if stop is not None:
            stop.set()

    vis_btn.click(visualise, [page.model_key, unit], [vis_img, vis_text], api_name=False, concurrency_limit=1,
                  concurrency_id="feature-vis")
    vis_stop.click(cancel_visual, None, None, api_name=False, concurrency_limit=None)
