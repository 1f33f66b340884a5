"""Classify & Explain: top-5, any class (or class A minus class B) with any method, Grad-CAM at any conv
layer, every method side by side, raw maps as .npy, and the checks on demand."""
from __future__ import annotations

import gradio as gr
import numpy as np

from alexnet.errors import OptionError
from alexnet.model import CONV_LAYERS
from app.examples import credits_line, flower_examples, other_examples
from app.lanes import CHEAP, lane_of
from app.passes import Passes
from app.ui import Page, UploadImage, friendly, need_image
from viz.attribution import (CAM_LAYER, check_method, class_index, explain, layer_cams, overlay_image,
                             predicted_class)
from viz.compare import compare_methods
from viz.methods import METHODS, names
from viz.plots import figure_to_image, overlay_row
from viz.sanity import faithfulness, sanity_check

TOP1 = ("the predicted class (top-1)", "")
NONE = ("none", "")
ALL_LAYERS = "all"
LAYER_CHOICES = list(CONV_LAYERS) + [("all five, one scale", ALL_LAYERS)]


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


def _stem(method: str, classes: list[str], target: int, contrast: int | None, layer: str | None = None) -> str:
    name = classes[target] + (f"-minus-{classes[contrast]}" if contrast is not None else "")
    return "-".join(p for p in (method, layer, name.replace(" ", "_").replace("/", "_")) if p)


def build(page: Page) -> None:
    reg, lanes = page.registry, page.lanes
    passes = Passes(lanes)                     # classify and the one-pass maps, batched across visitors
    with gr.Row():
        with gr.Column(scale=1):
            img = UploadImage(label="Your photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                              elem_id="upload")
            flowers, others = flower_examples(), other_examples()
            if flowers:                            # thumbnails (captions would replace them), true classes in order
                gr.Examples([e.path for e in flowers], inputs=img, elem_id="examples-flowers",
                            label="Held-out flowers the shipped model never trained on: "
                                  + ", ".join(e.label for e in flowers) + ", in this order")
                gr.Markdown(credits_line(flowers), elem_classes="credits")
            if others:
                gr.Examples([e.path for e in others], inputs=img, elem_id="examples-others",
                            label="Not flowers: " + ", ".join(e.label for e in others) + " (from matplotlib and scikit-learn)")
            method = gr.Dropdown([(m.label, m.name) for m in METHODS.values()], value="saliency",
                                 label="Attribution method", elem_id="method")
            with gr.Row():
                target = gr.Dropdown([TOP1], value="", label="Explain class (or click one in the top-5)",
                                     filterable=True, allow_custom_value=True, elem_id="target")
                contrast = gr.Dropdown([NONE], value="", label="...and not this class (contrast)",
                                       filterable=True, allow_custom_value=True, elem_id="contrast")
            with gr.Row():
                classify_btn = gr.Button("Classify")
                explain_btn = gr.Button("Explain", variant="primary")
        with gr.Column(scale=1):
            notice = gr.Markdown(elem_id="classify-notice")
            top5 = gr.Label(num_top_classes=5, label="Top-5 (click a class to explain it)", elem_id="top5")
    with gr.Row():
        heat = gr.Image(label="Attribution", type="pil", format="png", interactive=False, elem_id="attribution")
        cam = gr.Image(label="Grad-CAM", type="pil", interactive=False, elem_id="gradcam")
    with gr.Row():
        heat_npy = gr.File(label="Attribution map (.npy, float32, input size)", elem_id="attribution-npy")
        layer = gr.Dropdown(LAYER_CHOICES, value="conv5", label="Grad-CAM layer", elem_id="cam-layer")
    layers_img = gr.Image(label="Grad-CAM at conv1-conv5, one scale", type="pil", interactive=False,
                          visible=False, elem_id="cam-layers")
    with gr.Accordion(f"Compare all {len(METHODS)} methods for this image and class", open=False):
        compare_btn = gr.Button("Compare (occlusion last; about 10-20 s on a CPU)")
        compare_img = gr.Image(label="Every method, with its run time", type="pil", interactive=False,
                               elem_id="compare-grid")
    with gr.Accordion("Can we trust these maps? (sanity check and faithfulness)", open=False):
        gr.Markdown("**Sanity check** (Adebayo et al. 2018): randomise the layers from fc8 down; a map that "
                    "still looks the same does not depend on what the network learned. **Faithfulness**: delete "
                    "(or insert) the most important pixels first; a faithful map makes the score fall fast "
                    "(low deletion AUC) and rise fast (high insertion AUC).")
        checks_btn = gr.Button("Run both checks (about 10-30 s on a CPU)")
        checks_text = gr.Markdown()
        with gr.Row():
            sanity_img = gr.Image(label="Cascading randomisation", type="pil", interactive=False)
            faith_img = gr.Image(label="Deletion / insertion", type="pil", interactive=False)

    def chosen(loaded, target_v, contrast_v):
        """The dropdowns' classes -> indices (None: the predicted class / no contrast)."""
        classes = loaded.meta["classes"]
        return class_index(classes, target_v), class_index(classes, contrast_v)

    def maps(loaded, x, method_name, t, c, layer_v):
        """(the method's Explanation, the Grad-CAM overlay or None, the five-layer row or None) for class t
        (minus c); the method's own Grad-CAM uses the chosen layer, conv5 when all five are shown. The
        Grad-CAM overlay is None at conv5: the panel's is shown there (see `draw`)."""
        m = loaded.meta
        options = {"layer": layer_v} if method_name == "gradcam" and layer_v in CONV_LAYERS else {}
        e = explain(loaded.model, x, t, method_name, meta=m, contrast=c, **options)
        if layer_v == ALL_LAYERS:
            row = overlay_row(loaded.seen(x), layer_cams(loaded.model, x, e.target, contrast=c),
                              title=f"Grad-CAM for '{m['classes'][e.target]}', one colour scale")
            return e, None, row
        if options:                      # the method is Grad-CAM at this layer: its map is the second panel too
            return e, e.overlay, None
        if layer_v == CAM_LAYER:
            return e, None, None
        g = explain(loaded.model, x, e.target, "gradcam", meta=m, contrast=c, layer=layer_v)
        return e, g.overlay, None

    def on_lane(loaded, method_name: str, fn):
        """fn(the Loaded to use) in the lane of `method_name` (app.lanes): cheap passes on the shared
        model, slow ones on its private copy (whose passes give way to cheap ones)."""
        if lane_of(method_name) == CHEAP:
            return lanes.run(CHEAP, fn, loaded)
        return lanes.run_slow(loaded, fn)

    def method_maps(loaded, x, method_name, t, c, layer_v):
        """maps(...) computed in the method's lane."""
        def work(who):
            with who.lock:
                return maps(who, x, method_name, t, c, layer_v)
        return on_lane(loaded, method_name, work)

    def draw(loaded, x, method_name, t, c, layer_v, p=None):
        """Frames (attribution overlay, its raw map, Grad-CAM overlay, five-layer row or None, the class
        explained) for class t (None: the top-1) minus c. At conv5 the panel (one batched forward +
        backward; `p` when the caller has it) gives Grad-CAM, and saliency too: for those two methods it
        is the whole answer. Any other map is the method's own pass in its lane; a slow one (IG,
        SmoothGrad, occlusion) is preceded by a frame of what is ready, so nothing waits for it."""
        m = loaded.meta
        at_conv5 = layer_v == CAM_LAYER
        if p is None and at_conv5:
            p = passes.panel(loaded, x, t, c)
        if p is not None:
            t = p.target
        cam = overlay_image(x, p.gradcam, m["mean"], m["std"]) if at_conv5 else None
        if at_conv5 and method_name in ("saliency", "gradcam"):
            raw = p.saliency if method_name == "saliency" else p.gradcam
            yield (overlay_image(x, raw, m["mean"], m["std"]) if method_name == "saliency" else cam), raw, cam, None, t
            return
        if lane_of(method_name) != CHEAP:
            yield None, None, cam, None, t
        e, gc, row = method_maps(loaded, x, method_name, t, c, layer_v)
        yield e.overlay, e.heatmap, cam if at_conv5 else gc, row, e.target

    def shown(loaded, frame, method_name, c):
        """A frame of `draw` as the outputs (attribution, Grad-CAM, .npy, five-layer row); files are named
        after the method and the class."""
        first, raw, gc, row, t = frame
        stem = _stem(method_name, loaded.meta["classes"], t, c) if t is not None else method_name
        return (save_picture(page, first, stem), save_picture(page, gc, f"gradcam-{stem}"), save_map(page, raw, stem),
                gr.Image(value=row, visible=row is not None))

    @friendly
    def on_upload(path, key, method_name, layer_v, progress=gr.Progress()):
        """One forward + one backward: top-5, saliency and Grad-CAM together (the panel); the class choice
        resets to top-1. A slow method's own map follows in a second frame."""
        if not path:
            yield None, None, None, None, "", None, gr.skip(), gr.skip(), gr.skip()
            return
        loaded = reg.get(key, progress)
        m = loaded.meta
        x, img = loaded.prepare(path)
        p = passes.panel(loaded, x)
        reg.remember(loaded, img, p.logits, p.acts)       # Filters/Layers/Embeddings reuse this pass
        head = (path, top5_dict(m["classes"], p.top5), loaded.top5_note,
                gr.Dropdown(choices=[TOP1] + list(m["classes"]), value=""),
                gr.Dropdown(choices=[NONE] + list(m["classes"]), value=""))
        for frame in draw(loaded, x, method_name, None, None, layer_v, p):
            heat_f, cam_f, npy_f, row = shown(loaded, frame, method_name, None)
            image_v, top5_v, note_v, target_v, contrast_v = head
            yield image_v, top5_v, heat_f, cam_f, note_v, npy_f, target_v, contrast_v, row
            head = (gr.skip(),) * 5                        # set once: a second reset would fire the dropdowns again

    @friendly
    def redraw(path, method_name, key, target_v, contrast_v, layer_v, progress=gr.Progress()):
        """Every map again, for the chosen class (minus the contrast class) and Grad-CAM layer."""
        if not path:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip()
            return
        loaded = reg.get(key, progress)
        t, c = chosen(loaded, target_v, contrast_v)
        x, _ = loaded.prepare(path)
        for frame in draw(loaded, x, method_name, t, c, layer_v):
            yield shown(loaded, frame, method_name, c)

    @friendly
    def classify(image, model):
        need_image(image)
        loaded = reg.get(model)
        logits, _, _, _ = reg.forward(loaded, image, run=passes.forward)   # cached per image, else batched
        probs = logits.softmax(dim=1)[0]
        p, i = probs.topk(min(5, probs.numel()))
        return top5_dict(loaded.meta["classes"], (i.tolist(), p.tolist()))

    @friendly
    def explain_api(image, method, model, target="", layer="conv5"):
        """The /explain endpoint: the overlay and the raw map (.npy) for `target` (class name or
        index; default the top-1); `layer` is Grad-CAM's (conv1-conv5, default conv5)."""
        need_image(image)
        check_method(method)
        if layer not in CONV_LAYERS:
            raise OptionError(f"layer must be one of {', '.join(CONV_LAYERS)}, not {layer!r}")
        loaded = reg.get(model)
        t = class_index(loaded.meta["classes"], target)
        options = {"layer": layer} if method == "gradcam" else {}
        m = loaded.meta
        x, _ = loaded.prepare(image)
        if method in ("saliency", "gradcam") and layer == CAM_LAYER:    # both maps of one batched panel
            p = passes.panel(loaded, x, t)
            heat = p.saliency if method == "saliency" else p.gradcam
            stem = _stem(method, m["classes"], p.target, None, layer if method == "gradcam" else None)
            return save_picture(page, overlay_image(x, heat, m["mean"], m["std"]), stem), save_map(page, heat, stem)

        def work(who):
            with who.lock:
                return explain(who.model, x, t, method, meta=who.meta, **options)
        e = on_lane(loaded, method, work)
        stem = _stem(method, m["classes"], e.target, None, layer if method == "gradcam" else None)
        return save_picture(page, e.overlay, stem), save_map(page, e.heatmap, stem)

    def select_class(evt: gr.SelectData):
        return evt.value          # the clicked top-5 class becomes the target; its change redraws

    @friendly
    def compare(path, key, target_v, contrast_v, progress=gr.Progress()):
        need_image(path)
        loaded = reg.get(key, progress)
        t, c = chosen(loaded, target_v, contrast_v)

        def work(who):                                   # every method, occlusion among them: the slow lane
            x, _ = who.prepare(path)
            with who.lock:
                target = t if t is not None else predicted_class(who.model, x)
                classes = who.meta["classes"]
                title = f"why '{classes[target]}'" + (f" and not '{classes[c]}'" if c is not None else "")
                return compare_methods(who.model, x, target, meta=who.meta, contrast=c, title=title,
                                       progress=lambda i, n, name: progress(i / n, desc=f"{METHODS[name].label} ({i + 1}/{n})"))
        return lanes.run_slow(loaded, work).grid

    @friendly
    def checks(path, key, progress=gr.Progress()):
        need_image(path)
        loaded = reg.get(key)

        quick = names(quick_check=True)                  # the check repeats each once per layer: one-pass ones

        def work(who):                                   # a pass per layer and method: the slow lane
            x, _ = who.prepare(path)
            progress(0.1, desc="cascading randomisation (fc8 down to conv1)")
            with who.lock:
                s = sanity_check(who.model, x, methods=quick)
                progress(0.6, desc="deletion and insertion curves")
                return s, faithfulness(who.model, x, target=s.target, methods=quick)
        s, f = lanes.run_slow(loaded, work)
        lines = ["| method | rank correlation after randomising conv1 (lower = passes) | deletion AUC | insertion AUC |",
                 "|---|---|---|---|"]
        for meth in quick:
            lines.append(f"| {METHODS[meth].label} | {s.correlations[meth][-1]:.2f} | "
                         f"{f.deletion[meth]:.3f} | {f.insertion[meth]:.3f} |")
        text = "\n".join(lines) + ("\n\n" + loaded.notice if loaded.notice else "")
        return text, figure_to_image(s.figure), figure_to_image(f.figure)

    # Every pass below runs in a lane (app.lanes), which bounds how many run at once; Gradio itself admits
    # these events at once (no concurrency limit), so a saliency request never queues behind an IG one.
    lane = dict(concurrency_limit=None)
    outs = [page.image, top5, heat, cam, notice, heat_npy, target, contrast, layers_img]
    img.change(on_upload, [img, page.model_key, method, layer], outs, api_name=False, **lane)
    page.model_key.change(on_upload, [img, page.model_key, method, layer], outs, api_name=False, **lane)
    classify_btn.click(classify, [img, page.model_key], top5, api_name="classify", **lane)
    explain_btn.click(explain_api, [img, method, page.model_key, target, layer], [heat, heat_npy], api_name="explain",
                      **lane)
    redraw_in = [img, method, page.model_key, target, contrast, layer]
    redraw_out = [heat, cam, heat_npy, layers_img]
    for trigger in (method.input, target.change, contrast.input, layer.input):
        trigger(redraw, redraw_in, redraw_out, api_name=False, trigger_mode="always_last", **lane)
    top5.select(select_class, None, target, api_name=False)
    compare_btn.click(compare, [img, page.model_key, target, contrast], compare_img, api_name=False, **lane)
    checks_btn.click(checks, [img, page.model_key], [checks_text, sanity_img, faith_img], api_name=False, **lane)
