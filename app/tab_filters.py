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
from app.i18n import t
from app.ui import friendly, need_image
from viz.filters import FilterView, filter_response, filter_view
from viz.plots import overlay


def summary(view: FilterView) -> str:
    """One line per group: which filters, the name its colour scores earn, median score and AUC."""
    lines = []
    for i, g in enumerate(view.groups):
        auc = f", AUC {g['auc']:.2f} vs the other group" if g["auc"] is not None else ""
        lines.append(f"- **group {i}** (filters {g['indices'][0]}-{g['indices'][-1]}): {g['label']}, "
                     f"median colour score {g['median']:.2f}{auc}")
    if len(view.groups) == 1:
        lines.append("\nThis model has **no groups** (one tower), so its filters are shown together.")
    return "\n".join(lines)


def build(page: Page) -> None:
    gr.Markdown(t("filters_intro"))        # what to look for (Figure 3) and the colour score, in app/locales
    ref = filter_view(bvlc.conv1()[0], groups=2)
    with gr.Row():
        with gr.Column():
            gr.Markdown("### BVLC ImageNet AlexNet (2012, the paper's network)\n" + summary(ref), elem_id="bvlc-summary")
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
        index = gr.Slider(0, n - 1, value=0, step=1, label=f"Filter (0-{n - 1})", scale=3)
        respond = gr.Button(t("filters_respond"), scale=1)
    response = gr.Image(label=t("filters_response"), type="pil", interactive=False)

    @friendly
    def filters(key, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        view = page.compute.cheap(loaded, filter_view)
        text = f"### The current model\n{summary(view)}"
        if loaded.notice:
            text += "\n\n" + loaded.notice
        n = len(view.scores)
        return text, view.grid, view.histogram, gr.Slider(0, n - 1, step=1, label=f"Filter (0-{n - 1})")

    @friendly
    def one(i, path, key):
        need_image(path)
        loaded = page.registry.get(key)
        _, acts, x, _ = page.compute.forward(loaded, path)
        return overlay(loaded.seen(x), filter_response(acts, int(i)))

    outs = [current, grid, hist, index]
    page.demo.load(filters, page.model_key, outs, api_name=False)
    page.model_key.change(filters, page.model_key, outs, api_name=False)
    respond.click(one, [index, page.image, page.model_key], response, api_name=False)
    index.release(one, [index, page.image, page.model_key], response, api_name=False)
