"""The paper's tricks on the visitor's photo (issue 23, item 6): ReLU, LRN, overlapping pooling, dropout and the
training augmentation, each with the paper's reason and the paper-fidelity report's measured verdict."""
from __future__ import annotations

import threading

import gradio as gr
import torch

from alexnet.data import rgb_stats
from app.context import Page
from app.i18n import t, tr
from app.reports import verdict
from app.ui import friendly, need_image
from viz import tricks

REPORT_KEY = {"relu": "relu", "lrn": "lrn", "pool": "pool", "dropout": "dropout", "augmentation": "pca"}
_stats: dict[str, dict] = {}          # data set key -> its RGB statistics (the PCA lighting's eigenvectors)
_stats_lock = threading.Lock()


def data_stats(page: Page) -> dict:
    """The RGB mean, std, eigenvalues and eigenvectors of the image set in use (computed once per set)."""
    decoded = page.datasets.decoded()
    with _stats_lock:
        if decoded.key not in _stats:
            _stats[decoded.key] = rgb_stats(decoded.images)
        return _stats[decoded.key]


def paragraph(lang: str | None, trick: tricks.Trick) -> str:
    """What a trick's view shows on this photo, in the visitor's language (app/locales: trick_<name>_text)."""
    w = dict(trick.words)
    if trick.name == "lrn":
        w["own_note"] = "" if w["own"] else tr(lang, "trick_lrn_none")
    elif trick.name == "pool":
        w["dropped_note"] = tr(lang, "trick_pool_dropped") if w["dropped"] else ""
    elif trick.name == "augmentation":
        w["first"] = tr(lang, "trick_aug_grey" if w["brightness"] else "trick_aug_cast", grey=w["grey"])
    return tr(lang, f"trick_{trick.name}_text", **w)


def show_all(page: Page, image_path, key, draw: int = 0, lang: str | None = None) -> list:
    """[picture, text] for every trick in tricks.TRICKS order, on this photo and model, in `lang`; `draw` picks
    the masks and crops (the same number gives the same draws)."""
    need_image(image_path)
    loaded = page.registry.get(key)
    x, img = loaded.prepare(image_path)
    gen = torch.Generator().manual_seed(int(draw))
    classes = loaded.meta["classes"]
    views = {
        "relu": page.compute.cheap(loaded, tricks.activations, x),
        "lrn": page.compute.cheap(loaded, tricks.lrn, x),
        "pool": page.compute.cheap(loaded, tricks.pooling, x),
        "dropout": page.compute.cheap(loaded, tricks.dropout, x, classes, gen),
        "augmentation": tricks.augmentation(img, loaded.meta["input_size"], data_stats(page), gen),
    }
    out = []
    for name in tricks.TRICKS:
        trick = views[name]
        text = paragraph(lang, trick) + "\n\n" + tr(lang, "trick_verdict", verdict=verdict(REPORT_KEY[name]))
        if loaded.notice and name != "augmentation":
            text += "\n\n" + loaded.notice
        out += [trick.picture, text]
    return out


def build(page: Page) -> None:
    gr.Markdown(t("tricks_intro"))
    with gr.Row():
        go = gr.Button(t("tricks_go"), variant="primary", elem_id="tricks-go")
        again = gr.Button(t("tricks_again"), elem_id="tricks-again")
    draw = gr.State(0)
    outs = []
    for name in tricks.TRICKS:
        with gr.Group(elem_id=f"trick-{name}"):
            gr.Markdown(t(f"trick_{name}"))         # the paper's section and its reason, in the visitor's language
            outs.append(gr.Image(show_label=False, type="pil", interactive=False, height=380,
                                 elem_id=f"trick-{name}-img"))
            outs.append(gr.Markdown(elem_id=f"trick-{name}-text"))

    @friendly
    def on_go(image_path, key, d, lang):
        return show_all(page, image_path, key, d, lang)

    @friendly
    def on_again(image_path, key, d, lang):
        return [d + 1] + show_all(page, image_path, key, d + 1, lang)

    ins = [page.image, page.model_key, draw, page.lang]
    go.click(on_go, ins, outs, api_name=False)
    again.click(on_again, ins, [draw] + outs, api_name=False)
