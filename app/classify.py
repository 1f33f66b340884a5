"""Classify & Explain's handlers: plain functions of the page and the visitor's inputs (app.tab_classify wires
them to the layout; tests call them without a browser). Every pass goes through `page.compute`.

The panel rule, written once (`in_panel`, `panel_map`, `wants_saliency`): saliency and Grad-CAM at conv5 are both
in the panel, one batched forward + backward that the upload already paid for (the backward goes on to the pixels
only when saliency is the method shown); every other map is its method's own pass, in the lane its record names
(viz.methods).
"""
from __future__ import annotations

import gradio as gr
import numpy as np

from alexnet.errors import OptionError
from alexnet.model import CONV_LAYERS
from app.context import Page
from app.i18n import current_lang, tr
from app.ui import need_image
from viz.attribution import CAM_LAYER, Panel, check_method, class_index, explain, layer_cams, overlay_image, predicted_class
from viz.compare import compare_methods
from viz.methods import METHODS, is_cheap, names
from viz.plots import figure_to_image, overlay_row
from viz.sanity import faithfulness, sanity_check

ALL_LAYERS = "all"


def top5_dict(classes: list[str], top5) -> dict[str, float]:
    idx, probs = top5
    return {classes[i]: float(p) for i, p in zip(idx, probs)}


def save_map(page: Page, heatmap, stem: str) -> str | None:
    """The raw attribution map as float32 .npy (H x W at the input size), in a fresh folder of this server's scratch."""
    if heatmap is None:
        return None
    path = page.scratch_file(f"{stem}.npy")
    np.save(path, np.asarray(heatmap, dtype=np.float32))
    return str(path)


def save_picture(page: Page, picture, stem: str) -> str | None:
    """An overlay as a PNG file. Handed to Gradio as a file, not a PIL image: Gradio writes a PIL image
    to a path named by its hash in place, so two visitors explaining the same photo at once would
    write one file while it is being sent to the other (a truncated download); a file is copied into
    its cache under a temporary name and renamed."""
    if picture is None:
        return None
    path = page.scratch_file(f"{stem}.png")
    picture.save(path, format="png", compress_level=1)   # 5 ms, not 16 (level 6), for a 227 px overlay; 10% larger
    return str(path)


def stem(method: str, classes: list[str], target: int, contrast: int | None, layer: str | None = None) -> str:
    name = classes[target] + (f"-minus-{classes[contrast]}" if contrast is not None else "")
    return "-".join(p for p in (method, layer, name.replace(" ", "_").replace("/", "_")) if p)


def in_panel(method: str, layer: str) -> bool:
    """Does the panel (one forward + backward, Grad-CAM at conv5) hold `method`'s map with Grad-CAM at `layer`?"""
    return layer == CAM_LAYER and method in ("saliency", "gradcam")


def wants_saliency(method: str) -> bool:
    """Does the panel for `method` need the pixels' gradients? For any other method the panel gives Grad-CAM
    alone, its backward stopping at conv5 (half the cost)."""
    return method == "saliency"


def panel_map(p: Panel | None, method: str, layer: str):
    """The raw map the panel already holds for `method` with Grad-CAM at `layer`, or None when it must be computed."""
    if p is None or not in_panel(method, layer):
        return None
    return p.saliency if method == "saliency" else p.gradcam


def chosen(loaded, target_v, contrast_v) -> tuple[int | None, int | None]:
    """The dropdowns' classes -> indices (None: the predicted class / no contrast)."""
    classes = loaded.meta["classes"]
    return class_index(classes, target_v), class_index(classes, contrast_v)


def maps(model, meta: dict, seen, x, method_name: str, t, c, layer_v: str):
    """(the method's Explanation, the Grad-CAM overlay or None, the five-layer row or None) for class t
    (minus c), on `model` (compute.method hands it in); the method's own Grad-CAM uses the chosen layer,
    conv5 when all five are shown. The Grad-CAM overlay is None at conv5: the panel's is shown there."""
    options = {"layer": layer_v} if method_name == "gradcam" and layer_v in CONV_LAYERS else {}
    e = explain(model, x, t, method_name, meta=meta, contrast=c, **options)
    if layer_v == ALL_LAYERS:
        row = overlay_row(seen, layer_cams(model, x, e.target, contrast=c),
                          title=f"Grad-CAM for '{meta['classes'][e.target]}', one colour scale")
        return e, None, row
    if options:                      # the method is Grad-CAM at this layer: its map is the second panel too
        return e, e.overlay, None
    if layer_v == CAM_LAYER:
        return e, None, None
    g = explain(model, x, e.target, "gradcam", meta=meta, contrast=c, layer=layer_v)
    return e, g.overlay, None


def draw(page: Page, loaded, x, method_name, t, c, layer_v, p=None):
    """Frames (attribution overlay, its raw map, Grad-CAM overlay, five-layer row or None, the class
    explained) for class t (None: the top-1) minus c. At conv5 the panel (`p` when the caller has it)
    gives Grad-CAM, and for saliency and Grad-CAM the whole answer. Any other map is the method's own
    pass in its lane; a slow one is preceded by a frame of what is ready, so nothing waits for it."""
    m = loaded.meta
    at_conv5 = layer_v == CAM_LAYER
    if p is None and at_conv5:
        p = page.compute.panel(loaded, x, t, c, saliency=wants_saliency(method_name), acts=False)
    if p is not None:
        t = p.target
    cam = overlay_image(x, p.gradcam, m["mean"], m["std"]) if at_conv5 else None
    raw = panel_map(p, method_name, layer_v)
    if raw is not None:
        yield (overlay_image(x, raw, m["mean"], m["std"]) if method_name == "saliency" else cam), raw, cam, None, t
        return
    if not is_cheap(method_name):
        yield None, None, cam, None, t
    e, gc, row = page.compute.method(loaded, method_name, maps, m, loaded.seen(x), x, method_name, t, c, layer_v)
    yield e.overlay, e.heatmap, cam if at_conv5 else gc, row, e.target


def shown(page: Page, loaded, frame, method_name, c):
    """A frame of `draw` as the outputs (attribution, Grad-CAM, .npy, five-layer row); files are named
    after the method and the class."""
    first, raw, gc, row, t = frame
    name = stem(method_name, loaded.meta["classes"], t, c) if t is not None else method_name
    return (save_picture(page, first, name), save_picture(page, gc, f"gradcam-{name}"), save_map(page, raw, name),
            gr.Image(value=row, visible=row is not None))


TOP1 = ("the predicted class (top-1)", "")
NONE = ("none", "")


def on_upload(page: Page, path, key, method_name, layer_v, progress=gr.Progress()):
    """One forward + one backward: top-5, saliency and Grad-CAM together (the panel); the class choice
    resets to top-1. A slow method's own map follows in a second frame."""
    if not path:
        yield None, None, None, None, "", None, gr.skip(), gr.skip(), gr.skip()
        return
    loaded = page.registry.get(key, progress)
    m = loaded.meta
    x, img = loaded.prepare(path)
    p = page.compute.panel(loaded, x, saliency=wants_saliency(method_name))
    page.registry.remember(loaded, img, p.logits, p.acts)       # Filters/Layers/Embeddings reuse this pass
    head = (path, top5_dict(m["classes"], p.top5), loaded.top5_note,
            gr.Dropdown(choices=[TOP1] + list(m["classes"]), value=""),
            gr.Dropdown(choices=[NONE] + list(m["classes"]), value=""))
    for frame in draw(page, loaded, x, method_name, None, None, layer_v, p):
        heat_f, cam_f, npy_f, row = shown(page, loaded, frame, method_name, None)
        image_v, top5_v, note_v, target_v, contrast_v = head
        yield image_v, top5_v, heat_f, cam_f, note_v, npy_f, target_v, contrast_v, row
        head = (gr.skip(),) * 5                        # set once: a second reset would fire the dropdowns again


def redraw(page: Page, path, method_name, key, target_v, contrast_v, layer_v, progress=gr.Progress()):
    """Every map again, for the chosen class (minus the contrast class) and Grad-CAM layer."""
    if not path:
        yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
        return
    loaded = page.registry.get(key, progress)
    t, c = chosen(loaded, target_v, contrast_v)
    x, _ = loaded.prepare(path)
    for frame in draw(page, loaded, x, method_name, t, c, layer_v):
        yield shown(page, loaded, frame, method_name, c)


def classify(page: Page, image, model):
    """The /classify endpoint: the top-5 of one photo."""
    need_image(image)
    loaded = page.registry.get(model)
    logits, _, _, _ = page.compute.forward(loaded, image)     # cached per image, else batched
    probs = logits.softmax(dim=1)[0]
    p, i = probs.topk(min(5, probs.numel()))
    return top5_dict(loaded.meta["classes"], (i.tolist(), p.tolist()))


def explain_api(page: Page, image, method, model, target="", layer="conv5"):
    """The /explain endpoint: the overlay and the raw map (.npy) for `target` (class name or
    index; default the top-1); `layer` is Grad-CAM's (conv1-conv5, default conv5)."""
    need_image(image)
    check_method(method)
    if layer not in CONV_LAYERS:
        raise OptionError(f"layer must be one of {', '.join(CONV_LAYERS)}, not {layer!r}")
    page.compute.admits(method)                                # a refusal before the photo is decoded
    loaded = page.registry.get(model)
    t = class_index(loaded.meta["classes"], target)
    m = loaded.meta
    x, _ = loaded.prepare(image)
    p = (page.compute.panel(loaded, x, t, saliency=wants_saliency(method), acts=False)
         if in_panel(method, layer) else None)
    heat = panel_map(p, method, layer)
    if p is not None:                                          # both maps of one batched panel
        target_v, picture = p.target, overlay_image(x, heat, m["mean"], m["std"])
    else:
        options = {"layer": layer} if method == "gradcam" else {}
        e = page.compute.method(loaded, method, explain, x, t, method, meta=m, **options)
        target_v, picture, heat = e.target, e.overlay, e.heatmap
    name = stem(method, m["classes"], target_v, None, layer if method == "gradcam" else None)
    return save_picture(page, picture, name), save_map(page, heat, name)


def compare(page: Page, path, key, target_v, contrast_v, progress=gr.Progress()):
    """Every method side by side (occlusion last), in the slow lane."""
    need_image(path)
    loaded = page.registry.get(key, progress)
    t, c = chosen(loaded, target_v, contrast_v)
    x, _ = loaded.prepare(path)
    classes = loaded.meta["classes"]

    def grid(model):
        target = t if t is not None else predicted_class(model, x)
        title = f"why '{classes[target]}'" + (f" and not '{classes[c]}'" if c is not None else "")
        return compare_methods(model, x, target, meta=loaded.meta, contrast=c, title=title,
                               progress=lambda i, n, name: progress(i / n, desc=f"{METHODS[name].label} ({i + 1}/{n})"))
    return page.compute.slow(loaded, grid).grid


def checks(page: Page, path, key, progress=gr.Progress()):
    """The cascading-randomisation check and faithfulness of the one-pass methods, in the slow lane."""
    need_image(path)
    loaded = page.registry.get(key)
    quick = names(quick_check=True)                  # the check repeats each once per layer: one-pass ones
    lang = current_lang()                            # read here: the slow lane's thread has no request
    x, _ = loaded.prepare(path)

    def both(model):
        progress(0.1, desc=tr(lang, "checks_sanity_progress"))
        s = sanity_check(model, x, methods=quick)
        progress(0.6, desc=tr(lang, "checks_faith_progress"))
        return s, faithfulness(model, x, target=s.target, methods=quick)
    s, f = page.compute.slow(loaded, both)
    lines = [tr(lang, "checks_table_head"), "|---|---|---|---|"]
    for meth in quick:
        lines.append(f"| {METHODS[meth].label} | {s.correlations[meth][-1]:.2f} | "
                     f"{f.deletion[meth]:.3f} | {f.insertion[meth]:.3f} |")
    text = "\n".join(lines) + ("\n\n" + loaded.notice if loaded.notice else "")
    return text, figure_to_image(s.figure), figure_to_image(f.figure)
