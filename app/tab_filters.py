"""Filters: conv1 split by the paper's two GPU groups, scored for colour, and one filter's response."""
from __future__ import annotations

import gradio as gr

from app.ui import Page, friendly, need_image
from viz.filters import filter_response, filter_view
from viz.plots import overlay


def build(page: Page) -> None:
    gr.Markdown("In the paper (Figure 3) the 48 filters on GPU 1 became colour-agnostic edges and the 48 on GPU 2 "
                "colour blobs. Each filter's **colour score** is the share of its energy off the grey axis "
                "(0 = grey, 1 = pure colour-opponent). Groups are named from their scores, not their position.")
    show = gr.Button("Show conv1 filters", variant="primary")
    summary = gr.Markdown(elem_id="filters-summary")
    with gr.Row():
        grid = gr.Image(label="conv1 filters by group", show_label=False, type="pil", interactive=False, elem_id="filter-grid")
        hist = gr.Image(label="Colour score per group", show_label=False, type="pil", interactive=False)
    with gr.Row():
        index = gr.Slider(0, 95, value=0, step=1, label="Filter", scale=3)
        respond = gr.Button("Show this filter on my image", scale=1)
    response = gr.Image(label="The filter's activation map on the current image", type="pil", interactive=False)

    @friendly
    def filters(key, progress=gr.Progress()):
        loaded = page.registry.get(key, progress)
        view = filter_view(loaded.model)
        lines = [f"- **group {i}** (filters {g['indices'][0]}-{g['indices'][-1]}): {g['label']}, "
                 f"median colour score {g['median']:.2f}" for i, g in enumerate(view.groups)]
        if len(view.groups) == 1:
            lines.append("\nThis model has **no groups** (one tower), so its filters are shown together.")
        if loaded.notice:
            lines.append("\n" + loaded.notice)
        n = len(view.scores)
        return "\n".join(lines), view.grid, view.histogram, gr.Slider(0, n - 1, step=1, label=f"Filter (0-{n - 1})")

    @friendly
    def one(i, path, key):
        need_image(path)
        loaded = page.registry.get(key)
        _, acts, x, _ = page.registry.forward(loaded, path)
        return overlay(loaded.seen(x), filter_response(acts, int(i)))

    show.click(filters, page.model_key, [summary, grid, hist, index], api_name=False)
    respond.click(one, [index, page.image, page.model_key], response, api_name=False)
    index.release(one, [index, page.image, page.model_key], response, api_name=False)
