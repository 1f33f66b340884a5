"""Which concepts made this decision (issue 24, item 2): not only *where* the network looked but *what it saw
there*. For the photo and a class, conv5's channels with the largest share in the class's logit, each as a row:
where it fired on the photo, its icon (an image made to excite it) and the dataset patches it fires on most;
and the semantic dictionary: at each of conv5's 13 x 13 positions, the icon of the channel that fires most.

The shipped model's 256 icons are package data, so the view is instant offline; another model's are made on
demand (a job of app.compute, with progress) and cached. Passes: the shares are one forward + backward (cheap),
the dataset patches one pass over the data in use (a job, kept in the feature store with the Embeddings tab's).
"""
from __future__ import annotations

from functools import partial

import gradio as gr

from alexnet.errors import OptionError
from app.context import Page
from app.embedder import shipped_sha256
from app.i18n import t, tr
from app.state import FLOWERS
from app.ui import friendly, need_image, photo_api
from viz import concept_icons as CI
from viz import concepts as C
from viz.attribution import class_index


def _sha(page: Page, loaded) -> str:
    """The name the icons are kept under: the shipped file's hash for the shipped model, else its fingerprint."""
    return shipped_sha256() if loaded.key == FLOWERS else page.compute.model_key(loaded)


def _icons(page: Page, loaded, make: bool = False, progress=None, lang=None):
    m = loaded.meta
    report = None if progress is None else (lambda s, n: progress(s / n, desc=tr(lang, "concepts_icons_progress",
                                                                                  s=s, n=n)))
    run = page.compute.job if make else page.compute.cheap          # without `make` it only reads a file
    return run(loaded, CI.icons_for, _sha(page, loaded), progress=report, mean=m["mean"], std=m["std"], make=make)


def see(page: Page, image_path, key, wanted: str = "", k=C.TOP_K, lang: str | None = None,
        progress=gr.Progress()) -> tuple:
    """(the strip, the photo the network saw, its semantic dictionary or None, the sentence)."""
    need_image(image_path)
    loaded = page.registry.get(key, progress)
    m, classes = loaded.meta, loaded.meta["classes"]
    logits, acts, x, _ = page.compute.forward(loaded, image_path)
    try:
        target = class_index(classes, wanted)
    except OptionError:
        raise OptionError(tr(lang, "attack_bad_target", target=wanted)) from None
    probs = logits[0].softmax(0)
    target = int(probs.argmax()) if target is None else target
    shares = page.compute.cheap(loaded, C.channel_shares, x, target)
    d = page.datasets.decoded(progress)
    icons = _icons(page, loaded)                                     # None: not made for this model yet
    rows = page.compute.job(loaded, C.concept_strip, x, target, d.images, m["mean"], m["std"], m["input_size"],
                            icons=icons, k=int(k), shares=shares, cache_key=page.embedder.key(loaded, d),
                            progress=lambda done, n: progress(0.3 + 0.6 * done / max(n, 1),
                                                              desc=tr(lang, "concepts_pass", done=done, n=n)))
    strip = C.strip_picture(rows, title=f"{classes[target]}: conv5")
    dictionary = None
    if icons is not None:
        argmax, magnitude = C.semantic_dictionary(acts["conv5"])
        dictionary = C.dictionary_picture(argmax, magnitude, icons)
    total = float(shares.relevance.clamp(min=0).sum())
    top = sum(r.relevance for r in rows)
    text = tr(lang, "concepts_text", cls=classes[target], p=f"{float(probs[target]):.0%}", k=len(rows),
              channels=", ".join(f"{r.channel} ({r.relevance:+.3g})" for r in rows),
              share=f"{top / total:.0%}" if total > 0 else "-")
    if icons is None:
        text += "\n\n" + tr(lang, "concepts_no_icons")
    if loaded.notice:
        text += "\n\n" + loaded.notice
    return strip, loaded.seen(x), dictionary, text


def make_icons(page: Page, key, lang: str | None = None, progress=gr.Progress()) -> str:
    """Make (and cache) the chosen model's 256 conv5 icons, with progress; the shipped model's are instant."""
    loaded = page.registry.get(key, progress)
    icons = _icons(page, loaded, make=True, progress=progress, lang=lang)
    return tr(lang, "concepts_icons_ready", n=len(icons))


def build(page: Page) -> None:
    gr.Markdown(t("concepts_intro"))
    with gr.Row():
        wanted = gr.Textbox(value="", label=t("compare_class"), elem_id="concepts-class")
        k = gr.Slider(1, 12, value=C.TOP_K, step=1, label=t("concepts_k"), elem_id="concepts-k")
        go = gr.Button(t("concepts_go"), variant="primary", elem_id="concepts-go")
        icons_btn = gr.Button(t("concepts_icons"), elem_id="concepts-icons")
    text = gr.Markdown(elem_id="concepts-text")
    strip = gr.Image(label=t("concepts_strip"), type="pil", interactive=False, elem_id="concepts-strip")
    with gr.Row():
        seen = gr.Image(label=t("concepts_seen"), type="pil", interactive=False, elem_id="concepts-photo")
        dictionary = gr.Image(label=t("concepts_dictionary"), type="pil", interactive=False,
                              elem_id="concepts-dictionary")
    handler = partial(friendly(see), page)
    inputs = [page.image, page.model_key, wanted, k, page.lang]
    go.click(handler, inputs, [strip, seen, dictionary, text], api_name=False, concurrency_limit=None)
    photo_api(page, handler, inputs, [strip, seen, dictionary, text], "concepts")   # the photo as a file
    icons_btn.click(partial(friendly(make_icons), page), [page.model_key, page.lang], text, api_name=False,
                    concurrency_limit=1, concurrency_id="concept-icons")
