"""Filters: the paper's Figure 3 (BVLC's real conv1, by GPU group) beside the current model's conv1.

Both panels are drawn without a click: BVLC's once when the page is built (it never changes),
the current model's when the page loads and whenever the model changes.
"""
from __future__ import annotations

import gradio as gr

from alexnet import bvlc
from alexnet.model import default_input_size
from alexnet.shapes import layer_table
from app.context import Page
from app.i18n import current_lang, t, tr
from app.ui import friendly, need_image
from viz.filters import AGNOSTIC, MIXED, NO_GROUPS, SPECIFIC, FilterView, filter_response, filter_view
from viz.plots import overlay


LABEL_KEYS = {SPECIFIC: "filters_specific", AGNOSTIC: "filters_agnostic", MIXED: "filters_mixed",
              NO_GROUPS: "filters_no_groups_label"}


def summary(view: FilterView, lang: str | None = None) -> str:
    """One line per group: which filters, the name its colour scores earn, median score and AUC."""
    lines = []
    for i, g in enumerate(view.groups):
        auc = tr(lang, "filters_auc", auc=f"{g['auc']:.2f}") if g["auc"] is not None else ""
        lines.append(tr(lang, "filters_group", i=i, first=g["indices"][0], last=g["indices"][-1],
                        label=tr(lang, LABEL_KEYS[g["label"]]), median=f"{g['median']:.2f}", auc=auc))
    if len(view.groups) == 1:
        lines.append("\n" + tr(lang, "filters_no_groups"))
    return "\n".join(lines)


def build(page: Page) -> None:
    gr.Markdown(t("filters_intro"))        # what to look for (Figure 3) and the colour score, in app/locales
    ref = filter_view(bvlc.conv1()[0], groups=2)

    def bvlc_text(lang):
        return tr(lang, "filters_bvlc_head") + "\n" + summary(ref, lang)

    with gr.Row():
        with gr.Column():
            bvlc_summary = gr.Markdown(bvlc_text(None), elem_id="bvlc-summary")
            gr.Image(ref.grid, label=t("filters_bvlc_grid"), show_label=False, type="pil", interactive=False,
                     elem_id="bvlc-grid")
            gr.Image(ref.histogram, label=t("filters_bvlc_hist"), show_label=False, type="pil",
                     interactive=False, elem_id="bvlc-hist")
        with gr.Column():
            current = gr.Markdown(t("filters_current_drawing"), elem_id="filters-summary")
            grid = gr.Image(label=t("filters_grid"), show_label=False, type="pil", interactive=False,
                            elem_id="filter-grid")
            hist = gr.Image(label=t("filters_hist"), show_label=False, type="pil", interactive=False)
    with gr.Row():
        n = layer_table("paper", default_input_size("paper"))[0]["out_shape"][0]   # 96 until a model is drawn
        index = gr.Slider(0, n - 1, value=0, step=1, label=t("filters_index"), scale=3)
        respond = gr.Button(t("filters_respond"), scale=1)
    response = gr.Image(label=t("filters_response"), type="pil", interactive=False)

    @friendly
    def filters(key, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        view = page.compute.cheap(loaded, filter_view)
        lang = current_lang()
        text = tr(lang, "filters_current_head") + "\n" + summary(view, lang)
        if loaded.notice:
            text += "\n\n" + loaded.notice
        n = len(view.scores)
        return text, view.grid, view.histogram, gr.Slider(0, n - 1, step=1), bvlc_text(lang)

    @friendly
    def one(i, path, key):
        need_image(path)
        loaded = page.registry.get(key)
        _, acts, x, _ = page.compute.forward(loaded, path)
        return overlay(loaded.seen(x), filter_response(acts, int(i)))

    outs = [current, grid, hist, index, bvlc_summary]
    page.demo.load(filters, page.model_key, outs, api_name=False)
    page.model_key.change(filters, page.model_key, outs, api_name=False)
    respond.click(one, [index, page.image, page.model_key], response, api_name=False)
    index.release(one, [index, page.image, page.model_key], response, api_name=False)
