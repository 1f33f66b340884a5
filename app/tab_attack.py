"""Fool the network (issue 24, item 3): a change of a few 1/255 steps per pixel value, computed from the network's
own gradient (FGSM and PGD, Captum's captum.robust through viz.adversarial), that changes its answer.

The attack runs on the 256 x 256 square the upload path crops from and changes only the crop the network sees,
so the PNG offered for download, uploaded again in the first tab, gets the same answer. Every pass runs in the
slow lane on the model's replica (app.compute): PGD is `steps` forward + backward passes.
"""
from __future__ import annotations

from functools import partial

import gradio as gr
from PIL import Image

from alexnet.errors import OptionError
from app.context import Page
from app.i18n import t, tr
from app.ui import friendly, need_image, photo_api
from viz import adversarial
from viz.attribution import class_index
from viz.plots import overlay

DEFAULT_EPS = 2     # pixel steps: invisible, and enough to flip most of the held-out flowers with PGD


def _choices(page: Page, key: str | None) -> list:
    """The target dropdown: no target first, then the model's classes (read from its sidecar, not loaded)."""
    return [(t("attack_any"), "")] + list(page.registry.meta_of(key).get("classes", []) if key else [])


def _top5(classes: list[str], top5) -> dict[str, float]:
    return {classes[i]: p for i, p in top5}


def fool(page: Page, image_path, key, method: str = "fgsm", eps=DEFAULT_EPS, target: str = "", steps=10,
         lang: str | None = None) -> tuple:
    """(original, changed photo, the change amplified, Grad-CAM before, Grad-CAM after, top-5 before, top-5 after,
    the sentence, the changed photo as a PNG file) for one attack on the visitor's photo."""
    need_image(image_path)
    loaded = page.registry.get(key)
    m, classes = loaded.meta, loaded.meta["classes"]
    try:
        wanted = class_index(classes, target)                      # a name (any case) or an index; "" none
    except OptionError:
        raise OptionError(tr(lang, "attack_bad_target", target=target)) from None
    x01 = adversarial.pixels(image_path, m["input_size"])          # (1, 3, 256, 256): what the upload path crops
    a = page.compute.slow(loaded, adversarial.attack, x01, m["mean"], m["std"], eps, method=method, target=wanted,
                          steps=steps, input_size=m["input_size"])
    png = page.scratch_file(f"fooled-{classes[a.top1_after]}-{a.eps_pixels}.png")
    Image.fromarray(a.adversarial).save(png)
    words = dict(method=a.method.upper(), k=a.linf_pixels, before=classes[a.top1_before],
                 p_before=f"{a.top5_before[0][1]:.0%}", after=classes[a.top1_after], p_after=f"{a.top5_after[0][1]:.0%}",
                 target=classes[wanted] if wanted is not None else "", scale=a.change_scale)
    if wanted is None:
        text = tr(lang, "attack_flipped" if a.flipped else "attack_held", **words)
    else:
        text = tr(lang, "attack_reached" if a.flipped else "attack_missed", **words)
    text += " " + tr(lang, "attack_cam", before=words["before"], after=classes[a.cam_after_class])
    if loaded.notice:
        text += "\n\n" + loaded.notice
    return (a.original, a.adversarial, a.change, overlay(a.original, a.cam_before), overlay(a.adversarial, a.cam_after),
            _top5(classes, a.top5_before), _top5(classes, a.top5_after), text, str(png))


def smallest(page: Page, image_path, key, lang: str | None = None) -> str:
    """The smallest FGSM change (in 1/255 steps) that changes the answer, in a sentence."""
    need_image(image_path)
    loaded = page.registry.get(key)
    m = loaded.meta
    x01 = adversarial.pixels(image_path, m["input_size"])
    k = page.compute.slow(loaded, adversarial.flip_epsilon, x01, m["mean"], m["std"], input_size=m["input_size"])
    text = tr(lang, "attack_smallest", k=k) if k is not None else tr(lang, "attack_none", max=adversarial.MAX_EPS)
    return text + ("\n\n" + loaded.notice if loaded.notice else "")


def build(page: Page) -> None:
    gr.Markdown(t("attack_intro"))
    with gr.Row():
        method = gr.Radio([(t("attack_fgsm"), "fgsm"), (t("attack_pgd"), "pgd")], value="fgsm",
                          label=t("attack_method"), elem_id="attack-method")
        eps = gr.Slider(0, adversarial.MAX_EPS, value=DEFAULT_EPS, step=1, label=t("attack_eps"), elem_id="attack-eps")
        steps = gr.Slider(1, 50, value=10, step=1, label=t("attack_steps"), elem_id="attack-steps")
        target = gr.Dropdown(_choices(page, page.model_key.value), value="", label=t("attack_target"),
                             filterable=True, allow_custom_value=True, elem_id="attack-target")
    with gr.Row():
        go = gr.Button(t("attack_go"), variant="primary", elem_id="attack-go")
        least = gr.Button(t("attack_least"), elem_id="attack-least")
    text = gr.Markdown(elem_id="attack-text")
    with gr.Row():                         # PNG, not Gradio's default lossy WebP: the change is a few 1/255 steps
        original = gr.Image(label=t("attack_original"), type="numpy", format="png", interactive=False,
                            elem_id="attack-original")
        changed = gr.Image(label=t("attack_changed"), type="numpy", format="png", interactive=False,
                           elem_id="attack-changed")
        change = gr.Image(label=t("attack_change"), type="numpy", format="png", interactive=False,
                          elem_id="attack-change")
    with gr.Row():
        cam_before = gr.Image(label=t("attack_cam_before"), type="pil", interactive=False, elem_id="attack-cam-before")
        cam_after = gr.Image(label=t("attack_cam_after"), type="pil", interactive=False, elem_id="attack-cam-after")
    with gr.Row():
        top_before = gr.Label(num_top_classes=5, label=t("attack_top5_before"), elem_id="attack-top5-before")
        top_after = gr.Label(num_top_classes=5, label=t("attack_top5_after"), elem_id="attack-top5-after")
    download = gr.File(label=t("attack_download"), elem_id="attack-png")

    outs = [original, changed, change, cam_before, cam_after, top_before, top_after, text, download]
    # the lanes (app.compute) bound how many attacks run at once; Gradio admits the events at once
    handler = partial(friendly(fool), page)
    inputs = [page.image, page.model_key, method, eps, target, steps, page.lang]
    go.click(handler, inputs, outs, api_name=False, concurrency_limit=None)
    photo_api(page, handler, inputs, outs, "fool")   # the photo as a file
    least.click(partial(friendly(smallest), page), [page.image, page.model_key, page.lang], text,
                api_name=False, concurrency_limit=None)
    page.model_key.change(lambda key: gr.Dropdown(choices=_choices(page, key), value=""), page.model_key, target,
                          api_name=False)
