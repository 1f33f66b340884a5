"""Classify & Explain: top-5, any class (or class A minus class B) with any method, Grad-CAM at any conv
layer, every method side by side, raw maps as .npy, and the checks on demand.

The layout and its wiring; the handlers are app.classify's plain functions of the page."""
from __future__ import annotations

from functools import partial

import gradio as gr

from alexnet.model import CONV_LAYERS
from app import classify as H
from app.context import Page
from app.examples import credits_line, flower_examples, other_examples
from app.i18n import t
from app.ui import UploadImage, friendly
from viz.methods import METHODS

LAYER_CHOICES = list(CONV_LAYERS) + [("all five, one scale", H.ALL_LAYERS)]
TOP1, NONE = H.TOP1, H.NONE


def build(page: Page) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            img = UploadImage(label=t("classify_photo"), type="filepath", sources=["upload", "webcam", "clipboard"],
                              elem_id="upload")
            flowers, others = flower_examples(), other_examples()
            if flowers:                            # thumbnails (captions would replace them), true classes in order
                gr.Examples([e.path for e in flowers], inputs=img, elem_id="examples-flowers",
                            label=t("classify_examples_flowers") + ", ".join(e.label for e in flowers))
                gr.Markdown(credits_line(flowers), elem_classes="credits")
            if others:
                gr.Examples([e.path for e in others], inputs=img, elem_id="examples-others",
                            label=t("classify_examples_others") + ", ".join(e.label for e in others))
            method = gr.Dropdown([(m.label, m.name) for m in METHODS.values()], value="saliency",
                                 label=t("classify_method"), elem_id="method")
            with gr.Row():
                target = gr.Dropdown([TOP1], value="", label=t("classify_target"),
                                     filterable=True, allow_custom_value=True, elem_id="target")
                contrast = gr.Dropdown([NONE], value="", label=t("classify_contrast"),
                                       filterable=True, allow_custom_value=True, elem_id="contrast")
            with gr.Row():
                classify_btn = gr.Button(t("classify_classify"))
                explain_btn = gr.Button(t("classify_explain"), variant="primary")
        with gr.Column(scale=1):
            notice = gr.Markdown(elem_id="classify-notice")
            top5 = gr.Label(num_top_classes=5, label=t("classify_top5"), elem_id="top5")
    with gr.Row():
        heat = gr.Image(label=t("classify_attribution"), type="pil", format="png", interactive=False, elem_id="attribution")
        cam = gr.Image(label=t("classify_gradcam"), type="pil", interactive=False, elem_id="gradcam")
    with gr.Row():
        heat_npy = gr.File(label=t("classify_attribution_npy"), elem_id="attribution-npy")
        layer = gr.Dropdown(LAYER_CHOICES, value="conv5", label=t("classify_cam_layer"), elem_id="cam-layer")
    layers_img = gr.Image(label=t("classify_cam_layers"), type="pil", interactive=False,
                          visible=False, elem_id="cam-layers")
    with gr.Accordion(t("classify_compare_open") + f" ({len(METHODS)})", open=False):
        compare_btn = gr.Button(t("classify_compare_go"))
        compare_img = gr.Image(label=t("classify_compare_grid"), type="pil", interactive=False,
                               elem_id="compare-grid")
    with gr.Accordion(t("classify_checks_open"), open=False):
        gr.Markdown(t("classify_checks_help"))
        checks_btn = gr.Button(t("classify_checks_go"))
        checks_text = gr.Markdown()
        with gr.Row():
            sanity_img = gr.Image(label=t("classify_sanity"), type="pil", interactive=False)
            faith_img = gr.Image(label=t("classify_faithfulness"), type="pil", interactive=False)

    def handler(fn):
        """app.classify's `fn` for this page, its mistakes turned into sentences (app.ui.friendly)."""
        return partial(friendly(fn), page)

    def select_class(evt: gr.SelectData):
        return evt.value          # the clicked top-5 class becomes the target; its change redraws

    # Every pass below runs in a lane (app.compute), which bounds how many run at once; Gradio itself admits
    # these events at once (no concurrency limit), so a saliency request never queues behind an IG one.
    lane = dict(concurrency_limit=None)
    outs = [page.image, top5, heat, cam, notice, heat_npy, target, contrast, layers_img]
    img.change(handler(H.on_upload), [img, page.model_key, method, layer], outs, api_name=False, **lane)
    page.model_key.change(handler(H.on_upload), [img, page.model_key, method, layer], outs, api_name=False, **lane)
    classify_btn.click(handler(H.classify), [img, page.model_key], top5, api_name="classify", **lane)
    explain_btn.click(handler(H.explain_api), [img, method, page.model_key, target, layer], [heat, heat_npy], api_name="explain",
                      **lane)
    redraw_in = [img, method, page.model_key, target, contrast, layer]
    redraw_out = [heat, cam, heat_npy, layers_img]
    for trigger in (method.input, target.change, contrast.input, layer.input):
        trigger(handler(H.redraw), redraw_in, redraw_out, api_name=False, trigger_mode="always_last", **lane)
    top5.select(select_class, None, target, api_name=False)
    compare_btn.click(handler(H.compare), [img, page.model_key, target, contrast], compare_img, api_name=False, **lane)
    checks_btn.click(handler(H.checks), [img, page.model_key], [checks_text, sanity_img, faith_img], api_name=False, **lane)
