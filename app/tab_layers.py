"""Layers: the shape table with its formulas, and a step-by-step walk of the current image through it."""
from __future__ import annotations

import gradio as gr

from alexnet.model import LAYERS
from alexnet.model import default_input_size
from alexnet.shapes import conv1_note, layer_table, spec_table, to_markdown
from app.context import Page
from app.ui import friendly, need_image
from viz.activations import fc_bars, layer_maps
from viz.lesson import layer_text, lesson_pack

_P, _T = default_input_size("paper"), default_input_size("torchvision")     # 227, 224
VIEWS = {f"paper @ {_P}": ("paper", _P), f"torchvision @ {_T}": ("torchvision", _T),
         f"paper @ {_T} (the paper's typo)": ("paper", _T)}
DEFAULT_VIEW = next(iter(VIEWS))


def table_markdown(view: str) -> str:
    arch, size = VIEWS[view]
    return conv1_note(arch, size) + "\n\n" + to_markdown(layer_table(arch, size))


def _picture(acts, layer, img):
    if layer.startswith("fc"):
        return fc_bars(acts, layer)
    return layer_maps(acts, layer, image=img)["image"]


def build(page: Page) -> None:
    gr.Markdown("Each row applies `floor((W - F + 2P) / S) + 1` to the side W: kernel F, stride S, padding P. "
                "Step through the forward pass with **Next** to see your image at every layer.")
    view = gr.Radio(list(VIEWS), value=DEFAULT_VIEW, label="Architecture and input size")
    table = gr.Markdown(table_markdown(DEFAULT_VIEW), elem_id="shape-table")
    view.change(table_markdown, view, table, api_name=False)
    step = gr.State(-1)   # the first Next shows conv1
    with gr.Row():
        prev = gr.Button("◀ Previous")
        nxt = gr.Button("Next ▶", variant="primary")
        export = gr.Button("Export lesson pack (.zip)")
    info = gr.Markdown("Press **Next** to start at conv1.", elem_id="walk-info")
    picture = gr.Image(label="Activations at this layer", type="pil", interactive=False)
    pack = gr.File(label="Lesson pack", interactive=False)

    @friendly
    def show(i, image_path, key):
        need_image(image_path)
        loaded = page.registry.get(key)
        _, acts, x, _ = page.compute.forward(loaded, image_path)
        img = loaded.seen(x)
        i = i % len(LAYERS)
        row = spec_table(loaded.meta["spec"], loaded.meta["input_size"])[i]
        text = f"**Step {i + 1} of {len(LAYERS)}**\n\n" + layer_text(row)
        if loaded.notice:
            text += "\n\n" + loaded.notice
        return i, text, _picture(acts, LAYERS[i], img)

    def go(delta):
        @friendly
        def move(i, image_path, key):
            return show((i or 0) + delta, image_path, key)
        return move

    prev.click(go(-1), [step, page.image, page.model_key], [step, info, picture], api_name=False)
    nxt.click(go(+1), [step, page.image, page.model_key], [step, info, picture], api_name=False)

    @friendly
    def do_export(image_path, key):
        need_image(image_path)
        loaded = page.registry.get(key)
        _, acts, x, _ = page.compute.forward(loaded, image_path)
        img = loaded.seen(x)
        arch, size = loaded.meta["arch"], loaded.meta["input_size"]
        rows = spec_table(loaded.meta["spec"], size)
        pics = {layer: _picture(acts, layer, img) for layer in LAYERS}
        out = page.scratch_file(f"alexnet-{arch}-{size}-lesson.zip")     # one folder per export, pruned later
        return str(lesson_pack(rows, arch, size, pics, out, img))

    export.click(do_export, [page.image, page.model_key], pack, api_name=False)
