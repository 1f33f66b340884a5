"""Two models side by side (issue 24, item 4): the same photo and class through the model chosen at the top (A)
and another (B): each one's top-5, any method's map, its conv1 filters and where the photo lands in its own fc7
map of the data in use. Flowers against ImageNet, untrained against trained, before against after a fine-tune.

Each model's passes run through app.compute (its maps in the method's lane, its fc7 map from the page's
Embedder: drawn at once when ready, else built with progress). Also the API's /compare_models.
"""
from __future__ import annotations

from functools import partial

import gradio as gr

from alexnet.errors import OptionError
from app.context import Page
from app.embedder import map_title
from app.i18n import t, tr
from app.state import FLOWERS, UNTRAINED
from app.ui import friendly, need_image, photo_api
from viz.attribution import class_index, explain
from viz.filters import filter_view
from viz.methods import METHODS

SIDES = ("a", "b")


def _explain(model, x, target, method, meta):
    return explain(model, x, target, method, meta=meta)


def side(page: Page, key: str, path, method: str, wanted: str, lang: str | None, progress=None) -> tuple:
    """One model's column: (top-5, the method's map on the photo, conv1's filters, the photo on its fc7 map, line)."""
    loaded = page.registry.get(key, progress)
    m, classes = loaded.meta, loaded.meta["classes"]
    logits, _, x, _ = page.compute.forward(loaded, path)
    probs = logits[0].softmax(0)
    p, i = probs.topk(min(5, len(classes)))
    top5 = {classes[c]: float(v) for c, v in zip(i.tolist(), p.tolist())}
    try:
        target = class_index(classes, wanted)                      # None when not asked
    except OptionError:
        target = None                                              # a class this model lacks: its own top-1
    own = target is None
    target = int(i[0]) if own else target
    e = page.compute.method(loaded, method, _explain, x, target, method, m)
    conv1 = page.compute.cheap(loaded, filter_view).grid
    emb = page.embedder
    fc7 = emb.build_map(loaded, progress)                          # the shipped or cached map at once, else built
    star, _ = emb.star(loaded, fc7, path)
    picture = emb.plot(fc7, star, map_title(fc7))
    why = "compare_own" if not wanted else "compare_lacks" if own else "compare_class"
    name = next((label for label, v in page.registry.choices() if v == key), key)
    line = tr(lang, "compare_line", name=name,
              top=next(iter(top5)), p=f"{next(iter(top5.values())):.0%}", method=METHODS[method].short,
              explains=tr(lang, why, cls=classes[target], wanted=wanted))
    if loaded.notice:
        line += "\n\n" + loaded.notice
    return top5, e.overlay, conv1, picture, line


def compare_models(page: Page, path, key_a, key_b, method="gradcam", wanted="", lang=None, progress=gr.Progress()):
    """Both columns, A's then B's (the outputs of `side` for each)."""
    need_image(path)
    if method not in METHODS:
        method = "gradcam"
    key_b = key_b or UNTRAINED
    return side(page, key_a, path, method, wanted, lang, progress) + side(page, key_b, path, method, wanted, lang, progress)


def build(page: Page) -> None:
    gr.Markdown(t("compare_intro"))
    choices = page.registry.choices()
    first = choices[0][1]
    with gr.Row():
        # B: untrained against the trained default (the paper's "what training did"), or the flowers model
        other = gr.Dropdown(choices=choices, value=UNTRAINED if first != UNTRAINED else FLOWERS,
                            label=t("compare_model_b"), allow_custom_value=True, elem_id="compare-b")
        method = gr.Dropdown([(m.label, m.name) for m in METHODS.values()], value="gradcam",
                             label=t("classify_method"), elem_id="compare-method")
        wanted = gr.Textbox(value="", label=t("compare_class"), elem_id="compare-class")
        go = gr.Button(t("compare_go"), variant="primary", elem_id="compare-go")
    outs = []
    with gr.Row():
        for s in SIDES:
            with gr.Column(elem_id=f"compare-{s}"):
                line = gr.Markdown(elem_id=f"compare-{s}-line")
                top5 = gr.Label(num_top_classes=5, label=t(f"compare_top5_{s}"), elem_id=f"compare-{s}-top5")
                heat = gr.Image(label=t("compare_map"), type="pil", interactive=False, elem_id=f"compare-{s}-map")
                conv1 = gr.Image(label=t("compare_conv1"), type="pil", interactive=False, elem_id=f"compare-{s}-conv1")
                fc7 = gr.Image(label=t("compare_fc7"), type="pil", interactive=False, elem_id=f"compare-{s}-fc7")
                outs += [top5, heat, conv1, fc7, line]
    handler = partial(friendly(compare_models), page)
    inputs = [page.image, page.model_key, other, method, wanted, page.lang]
    go.click(handler, inputs, outs, api_name=False, concurrency_limit=None)
    photo_api(page, handler, inputs, outs, "compare_models")   # the photo as a file
