"""The guided tour for a lesson (issue 23, item 4): eleven steps from "a photo is 3 x 227 x 227 numbers" to
"fc8: five scores", each a short paragraph in large type and the view it opens, with Back and Next.

Each step names the tab it opens and draws its own picture from the visitor's photo (or the held-out rose
shipped with the app when there is none), through the same library functions the tabs call; the last
step hands out the lesson pack. Words: app/locales (tour_<id>_title / _text), in the visitor's language.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import numpy as np
import torch
from PIL import Image

from alexnet.model import LAYERS
from alexnet.shapes import spec_table
from app.context import Page
from app.examples import flower_examples
from app.i18n import current_lang, t, tr
from app.state import FLOWERS
from app.embedder import shipped_sha256
from app.ui import friendly
from viz import arithmetic as arith
from viz import diagram, tricks
from viz.activations import fc_bars, layer_maps
from viz.filters import filter_view
from viz.fc7_map import SHIPPED_MAP, load_map, place
from viz.embedding import scatter
from viz.plots import barh, figure_to_image, overlay

CSS = "#tour-text { font-size: 1.45em; line-height: 1.45; } #tour-title h2 { font-size: 2em; }"


@dataclass(frozen=True)
class Step:
    id: str            # names its words: tour_<id>_title, tour_<id>_text
    tab: str           # the tab it opens (app.page.TABS ids)


STEPS = (Step("photo", "classify"), Step("network", "layers"), Step("conv1", "layers"), Step("groups", "filters"),
         Step("pool", "tricks"), Step("deeper", "layers"), Step("fc", "layers"), Step("dropout", "tricks"),
         Step("scores", "classify"), Step("gradcam", "classify"), Step("map", "embeddings"), Step("pack", "layers"))


def photo_of(image_path) -> str:
    """The visitor's photo, else the held-out rose shipped with the app (the tour works before any upload)."""
    if image_path:
        return image_path
    found = [e for e in flower_examples() if e.label == "roses"] or flower_examples()
    if not found:
        raise gr.Error(tr(current_lang(), "err_need_image"))
    return found[0].path


def channels(img: Image.Image) -> Image.Image:
    """The photo as the three grids of numbers the network reads: red, green, blue side by side, in their colour."""
    a = np.asarray(img.convert("RGB"))
    tiles = []
    for c in range(3):
        one = np.zeros_like(a)
        one[..., c] = a[..., c]
        tiles.append(one)
    pad = np.full((a.shape[0], 8, 3), 255, np.uint8)
    return Image.fromarray(np.concatenate([tiles[0], pad, tiles[1], pad, tiles[2]], 1))


def view(page: Page, i: int, image_path, key, lang) -> tuple[str, str, Image.Image | None]:
    """(title, paragraph, picture) of step i for this photo and model."""
    step = STEPS[i]
    loaded = page.registry.get(key)
    meta, path = loaded.meta, photo_of(image_path)
    classes, size = meta["classes"], meta["input_size"]
    logits, acts, x, _ = page.compute.forward(loaded, path)
    img = loaded.seen(x)
    rows = spec_table(meta["spec"], size)
    probs = logits[0].softmax(0)
    top = int(probs.argmax())
    v = dict(size=size, numbers=3 * size * size, k=len(classes), top=classes[top], p=f"{float(probs[top]):.0%}",
             c1=rows[0]["out_shape"][0], s1=rows[0]["out_shape"][1], k1=rows[0]["kernel"], st1=rows[0]["stride"],
             params=f"{sum(r['params'] for r in rows):,}", fc6_in=rows[LAYERS.index("fc6")]["in_shape"],
             rf5=rows[LAYERS.index("conv5")]["receptive_field"])
    v["fc6_in"] = "x".join(map(str, v["fc6_in"]))
    picture = None
    if step.id == "photo":
        picture = channels(img)
    elif step.id == "network":
        picture = diagram.draw(rows, acts=acts, photo=img, classes=classes).image
    elif step.id == "conv1":
        steps = page.compute.cheap(loaded, arith.trace, x)
        y, xx = divmod(int(steps["conv1"].output[0].argmax()), steps["conv1"].output.shape[2])   # a unit that fires
        a = page.compute.cheap(loaded, arith.unit_arithmetic, steps, "conv1", 0, y, xx)
        picture = arith.picture(img, a, meta["mean"], meta["std"])
        v.update(value=f"{a.value:.4g}", terms=rows[0]["kernel"] ** 2 * 3)
    elif step.id == "groups":
        picture = page.compute.cheap(loaded, filter_view).grid
    elif step.id == "pool":
        picture = page.compute.cheap(loaded, tricks.pooling, x).picture
    elif step.id == "deeper":
        picture = layer_maps(acts, "conv5", image=img)["image"]
    elif step.id == "fc":
        picture = fc_bars(acts, "fc7")
    elif step.id == "dropout":
        d = page.compute.cheap(loaded, tricks.dropout, x, classes, torch.Generator().manual_seed(0))
        picture, v["agree"] = d.picture, d.numbers["agree"]
    elif step.id == "scores":
        vals, idx = probs.topk(min(5, len(classes)))
        picture = figure_to_image(barh([classes[j] for j in idx.tolist()][::-1], vals.tolist()[::-1],
                                       title="fc8 -> softmax", width=6.0))
    elif step.id == "gradcam":
        panel = page.compute.panel(loaded, x, saliency=False, acts=False)
        picture = overlay(img, panel.gradcam)
    elif step.id == "map":
        m = load_map(SHIPPED_MAP) if loaded.key == FLOWERS else None      # drawn at once for the shipped model;
        if m is not None and m.info.get("model_sha256") == shipped_sha256():  # others build theirs in the tab
            picture = scatter(m, place(m, acts["fc7"][0].numpy()), title=f"fc7 of {len(m.coords):,} images")
    title = f"{i + 1} / {len(STEPS)} · " + tr(lang, f"tour_{step.id}_title", **v)
    text = tr(lang, f"tour_{step.id}_text", **v)
    if loaded.notice:
        text += "\n\n" + loaded.notice
    return title, text, picture


def build(page: Page, export):
    """The tour's panel (call it above the tabs); `export(page, image_path, key, lang)` makes the lesson pack (the Layers
    tab's). -> wire(tabs): call it once the tabs exist, so each step can open its tab."""
    with gr.Accordion(t("tour_open"), open=False, elem_id="tour"):
        step = gr.State(-1)
        title = gr.Markdown(elem_id="tour-title")
        text = gr.Markdown(t("tour_intro"), elem_id="tour-text")
        picture = gr.Image(show_label=False, type="pil", interactive=False, height=420, elem_id="tour-picture")
        with gr.Row():
            back = gr.Button(t("tour_back"), elem_id="tour-back")
            nxt = gr.Button(t("tour_next"), variant="primary", elem_id="tour-next")
        pack_btn = gr.Button(t("tour_pack"), visible=False, elem_id="tour-pack")
        pack = gr.File(label=t("lesson_pack"), interactive=False, visible=False, elem_id="tour-pack-file")

    def go(delta):
        @friendly
        def move(i, image_path, key, lang):
            i = min(max((i if i >= 0 else -1) + delta, 0), len(STEPS) - 1)
            head, body, pic = view(page, i, image_path, key, lang)
            last = i == len(STEPS) - 1
            return (i, "## " + head, body, pic, gr.Tabs(selected=STEPS[i].tab), gr.Button(visible=last),
                    gr.File(visible=last))
        return move

    def wire(tabs: gr.Tabs) -> None:
        outs = [step, title, text, picture, tabs, pack_btn, pack]
        ins = [step, page.image, page.model_key, page.lang]
        back.click(go(-1), ins, outs, api_name=False)
        nxt.click(go(+1), ins, outs, api_name=False)
        pack_btn.click(friendly(lambda image_path, key, lang: export(page, photo_of(image_path), key, lang)),
                       [page.image, page.model_key, page.lang], pack, api_name=False)
    return wire
