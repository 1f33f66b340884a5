"""Layers: the shape table with its formulas, and a step-by-step walk of the current image through it."""
from __future__ import annotations

import gradio as gr

from alexnet.model import LAYERS
from alexnet.model import default_input_size
from alexnet.shapes import conv1_note, layer_table, spec_table, to_markdown
from app.context import Page
from app.i18n import current_lang, t, tr
from app.lesson_words import formula_words, layer_words, unit_words
from app.ui import friendly, need_image
from viz.activations import fc_bars, layer_maps
from viz import arithmetic as arith
from viz import diagram as diagram_
from viz import formula
from viz.lesson import lesson_pack

_P, _T = default_input_size("paper"), default_input_size("torchvision")     # 227, 224
VIEWS = {f"paper @ {_P}": ("paper", _P), f"torchvision @ {_T}": ("torchvision", _T),
         f"paper @ {_T} (the paper's typo)": ("paper", _T)}
DEFAULT_VIEW = next(iter(VIEWS))


def table_markdown(view: str, classes: int | None = None) -> str:
    """The shape table for a view; fc8 with the current model's class count (`classes`, default 1,000)."""
    arch, size = VIEWS[view]
    rows = layer_table(arch, size, **({"num_classes": int(classes)} if classes else {}))
    return conv1_note(arch, size) + "\n\n" + to_markdown(rows)


def _picture(acts, layer, img):
    if layer.startswith("fc"):
        return fc_bars(acts, layer)
    return layer_maps(acts, layer, image=img)["image"]


def network(page: Page, image_path, key) -> tuple:
    """(picture, blocks) of the chosen model drawn from its shape table; with a photo, its activations inside."""
    loaded = page.registry.get(key)
    rows = spec_table(loaded.meta["spec"], loaded.meta["input_size"])
    acts = img = None
    if image_path:
        _, acts, x, _ = page.compute.forward(loaded, image_path)
        img = loaded.seen(x)
    d = diagram_.draw(rows, acts=acts, photo=img, classes=loaded.meta.get("classes"))
    return d.image, d.blocks


def lesson_zip(page: Page, image_path, key, lang: str | None = None) -> str:
    """The lesson pack (.zip) of this photo and model: the table, a page per layer, every layer's picture."""
    loaded = page.registry.get(key)
    _, acts, x, _ = page.compute.forward(loaded, image_path)
    img = loaded.seen(x)
    arch, size = loaded.meta["arch"], loaded.meta["input_size"]
    rows = spec_table(loaded.meta["spec"], size)
    pics = {layer: _picture(acts, layer, img) for layer in LAYERS}
    out = page.scratch_file(f"alexnet-{arch}-{size}-lesson.zip")     # one folder per export, pruned later
    return str(lesson_pack(rows, arch, size, pics, out, lambda r: layer_words(lang, r), img))


def layer_step(page: Page, i: int, image_path, key, lang: str | None = None) -> tuple:
    """(i, text, picture) of step i of the walk: the layer's row of the table in words and, with a photo,
    its maps (conv, pool) or bars (fc)."""
    loaded = page.registry.get(key)
    i = i % len(LAYERS)
    row = spec_table(loaded.meta["spec"], loaded.meta["input_size"])[i]
    text = tr(lang, "layer_step", i=i + 1, n=len(LAYERS)) + "\n\n" + layer_words(lang, row)
    if not image_path:
        return i, text + "\n\n" + tr(lang, "layer_no_photo"), None
    _, acts, x, _ = page.compute.forward(loaded, image_path)
    if loaded.notice:
        text += "\n\n" + loaded.notice
    return i, text, _picture(acts, LAYERS[i], loaded.seen(x))


def unit_view(page: Page, image_path, key, layer_v, channel_v, y_v, x_v, click=None) -> tuple:
    """(row, column, picture, text) of one unit's arithmetic; `click` (x, y) in the photo's pixels picks the unit."""
    need_image(image_path)
    loaded = page.registry.get(key)
    x, _ = loaded.prepare(image_path)
    steps = page.compute.cheap(loaded, arith.trace, x)
    out = steps[layer_v].output
    channels = out.shape[0]
    c = int(channel_v or 0)
    if not 0 <= c < channels:
        raise gr.Error(tr(current_lang(), "err_channel", layer=layer_v, last=channels - 1, c=c))
    if click is not None:
        y, xx = arith.unit_at(steps, layer_v, *click)
    else:
        y, xx = (0, 0) if out.dim() == 1 else (min(max(int(y_v or 0), 0), out.shape[1] - 1),
                                               min(max(int(x_v or 0), 0), out.shape[2] - 1))
    a = page.compute.cheap(loaded, arith.unit_arithmetic, steps, layer_v, c, y, xx)
    text = unit_words(current_lang(), a) + ("\n\n" + loaded.notice if loaded.notice else "")
    return y, xx, arith.picture(loaded.seen(x), a, loaded.meta["mean"], loaded.meta["std"]), text


def build(page: Page) -> None:
    with gr.Accordion(t("diagram_open"), open=True):
        gr.Markdown(t("diagram_help"))
        diagram = gr.Image(show_label=False, type="pil", interactive=False, elem_id="diagram")
        blocks = gr.State(None)      # where each layer sits on the picture, for clicks
    gr.Markdown(t("layers_intro"))
    view = gr.Radio(list(VIEWS), value=DEFAULT_VIEW, label=t("layers_view"))
    table = gr.Markdown(table_markdown(DEFAULT_VIEW), elem_id="shape-table")   # page.CSS: no number wraps

    def table_for(view_v, key):
        """The table with fc8 as wide as the chosen model's class list (5 for the flowers model)."""
        return table_markdown(view_v, len(page.registry.meta_of(key).get("classes") or []) or None)

    for event in (view.change, page.model_key.change, page.demo.load):
        event(table_for, [view, page.model_key], table, api_name=False)
    step = gr.State(-1)   # the first Next shows conv1
    with gr.Row():
        prev = gr.Button(t("layers_prev"))
        nxt = gr.Button(t("layers_next"), variant="primary")
        export = gr.Button(t("layers_export"))
    info = gr.Markdown(t("layers_walk_start"), elem_id="walk-info")
    picture = gr.Image(label=t("layers_activations"), type="pil", interactive=False, elem_id="walk-picture")
    pack = gr.File(label=t("lesson_pack"), interactive=False)

    def go(delta):
        @friendly
        def move(i, image_path, key, lang):
            need_image(image_path)
            return layer_step(page, (i or 0) + delta, image_path, key, lang)
        return move

    prev.click(go(-1), [step, page.image, page.model_key, page.lang], [step, info, picture], api_name=False)
    nxt.click(go(+1), [step, page.image, page.model_key, page.lang], [step, info, picture], api_name=False)

    @friendly
    def draw_network(image_path, key):
        return network(page, image_path, key)

    @friendly
    def open_block(image_path, key, where, lang, evt: gr.SelectData):
        layer = diagram_.block_at(where or [], *evt.index[:2])
        if layer is None or layer == "input":
            loaded = page.registry.get(key)
            note = conv1_note(loaded.meta["arch"], loaded.meta["input_size"])
            return -1, tr(lang, "layer_input", size=loaded.meta["input_size"]) + "\n\n" + note, None
        return layer_step(page, LAYERS.index(layer), image_path, key, lang)

    for event in (page.tabs["layers"].select, page.model_key.change, page.demo.load):
        event(draw_network, [page.image, page.model_key], [diagram, blocks], api_name=False)
    diagram.select(open_block, [page.image, page.model_key, blocks, page.lang], [step, info, picture], api_name=False)

    @friendly
    def do_export(image_path, key, lang):
        need_image(image_path)
        return lesson_zip(page, image_path, key, lang)

    export.click(do_export, [page.image, page.model_key, page.lang], pack, api_name=False)

    with gr.Accordion(t("formula_open"), open=False):
        with gr.Row():
            fw = gr.Number(value=224, precision=0, minimum=1, maximum=2048, label=t("formula_w"), elem_id="f-w")
            ff = gr.Number(value=11, precision=0, minimum=1, maximum=64, label=t("formula_f"), elem_id="f-f")
            fs = gr.Number(value=4, precision=0, minimum=1, maximum=32, label=t("formula_s"), elem_id="f-s")
            fp = gr.Number(value=0, precision=0, minimum=0, maximum=32, label=t("formula_p"), elem_id="f-p")
        with gr.Row():
            presets = {"formula_paper": (224, 11, 4, 0), "formula_caffe": (227, 11, 4, 0),
                       "formula_torchvision": (224, 11, 4, 2), "formula_pool1": (55, 3, 2, 0)}
            preset_btns = {name: gr.Button(t(name), size="sm") for name in presets}
        formula_text = gr.Markdown(formula_words("en", 224, 11, 4, 0), elem_id="formula-text")
        formula_img = gr.Image(formula.windows(224, 11, 4, 0), label=t("formula_picture"), type="pil", interactive=False, elem_id="formula-img")

    @friendly
    def live(w, f, s, p, lang):
        try:
            args = tuple(int(v) for v in (w, f, s, p))
            return formula_words(lang, *args), formula.windows(*args)
        except (TypeError, ValueError) as e:            # a number left empty, or a kernel that does not fit
            raise gr.Error(str(e) if str(e) else tr(lang, "err_whole_numbers")) from None

    for box in (fw, ff, fs, fp):
        box.change(live, [fw, ff, fs, fp, page.lang], [formula_text, formula_img], api_name=False,
                   trigger_mode="always_last")
    page.tabs["layers"].select(live, [fw, ff, fs, fp, page.lang], [formula_text, formula_img], api_name=False)
    for name, btn in preset_btns.items():
        btn.click(lambda v=presets[name]: v, None, [fw, ff, fs, fp], api_name=False)

    with gr.Accordion(t("unit_open"), open=False):
        gr.Markdown(t("unit_help"))
        with gr.Row():
            unit_layer = gr.Dropdown(list(arith.STEPS), value="conv1", label=t("unit_layer"), elem_id="unit-layer")
            unit_channel = gr.Number(value=0, precision=0, minimum=0, label=t("unit_channel"), elem_id="unit-channel")
            unit_y = gr.Number(value=27, precision=0, minimum=0, label=t("unit_row"), elem_id="unit-y")
            unit_x = gr.Number(value=27, precision=0, minimum=0, label=t("unit_column"), elem_id="unit-x")
            unit_btn = gr.Button(t("unit_show"), elem_id="unit-show")
        with gr.Row():
            unit_photo = gr.Image(label=t("unit_photo"), type="pil",
                                  interactive=False, elem_id="unit-photo")
            unit_text = gr.Markdown(elem_id="unit-arithmetic")

    @friendly
    def on_button(image_path, key, layer_v, channel_v, y_v, x_v):
        return unit_view(page, image_path, key, layer_v, channel_v, y_v, x_v)

    @friendly
    def on_click(image_path, key, layer_v, channel_v, evt: gr.SelectData):
        return unit_view(page, image_path, key, layer_v, channel_v, None, None, click=tuple(evt.index[:2]))

    unit_ins = [page.image, page.model_key, unit_layer, unit_channel]
    unit_outs = [unit_y, unit_x, unit_photo, unit_text]
    unit_btn.click(on_button, unit_ins + [unit_y, unit_x], unit_outs, api_name=False)
    unit_photo.select(on_click, unit_ins, unit_outs, api_name=False)
