"""Classify & Explain: top-5, one attribution method at a time, Grad-CAM, and the checks on demand."""
from __future__ import annotations

import gradio as gr

from app.examples import example_images
from app.ui import Page, UploadImage, friendly, need_image
from viz.attribution import METHODS, explain, overlay_image, panel
from viz.plots import figure_to_image
from viz.sanity import faithfulness, sanity_check

METHOD_LABELS = {
    "saliency": "Saliency (gradient)",
    "integrated_gradients": "Integrated Gradients (32 steps)",
    "smoothgrad": "SmoothGrad (16 noisy copies)",
    "guided_backprop": "Guided Backprop",
    "gradcam": "Grad-CAM on conv5",
    "occlusion": "Occlusion (slow on CPU)",
}
# The cascading-randomisation check repeats each method once per layer: keep the slow ones out by default.
CHECK_METHODS = ("saliency", "guided_backprop", "gradcam")


def top5_dict(classes: list[str], top5) -> dict[str, float]:
    idx, probs = top5
    return {classes[i]: float(p) for i, p in zip(idx, probs)}


def build(page: Page) -> None:
    reg = page.registry
    with gr.Row():
        with gr.Column(scale=1):
            img = UploadImage(label="Your photo", type="filepath", sources=["upload", "webcam", "clipboard"],
                              elem_id="upload")
            examples = example_images()
            if examples:
                gr.Examples(examples, inputs=img, label="Examples (shipped with matplotlib and scikit-learn)")
            method = gr.Dropdown([(v, k) for k, v in METHOD_LABELS.items()], value="saliency",
                                 label="Attribution method", elem_id="method")
            with gr.Row():
                classify_btn = gr.Button("Classify")
                explain_btn = gr.Button("Explain", variant="primary")
        with gr.Column(scale=1):
            notice = gr.Markdown(elem_id="classify-notice")
            top5 = gr.Label(num_top_classes=5, label="Top-5", elem_id="top5")
    with gr.Row():
        heat = gr.Image(label="Attribution", type="pil", format="png", interactive=False, elem_id="attribution")
        cam = gr.Image(label="Grad-CAM on conv5", type="pil", interactive=False, elem_id="gradcam")
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

    @friendly
    def on_upload(path, key, method_name, progress=gr.Progress()):
        """One forward + one backward: top-5, saliency and Grad-CAM together."""
        if not path:
            return None, None, None, None, ""
        loaded = reg.get(key, progress)
        x, img = loaded.prepare(path)
        m = loaded.meta
        with loaded.lock:
            p = panel(loaded.model, x, trained=loaded.trained and not loaded.partial)
            reg.remember(loaded, img, p.logits, p.acts)   # Filters/Layers/Embeddings reuse this pass
            sal = overlay_image(x, p.saliency, m["mean"], m["std"])
            gc = overlay_image(x, p.gradcam, m["mean"], m["std"])
            first = sal if method_name == "saliency" else (gc if method_name == "gradcam" else None)
            if first is None:
                first = explain(loaded.model, x, p.target, method_name, meta=m).overlay
        return path, top5_dict(m["classes"], p.top5), first, gc, loaded.top5_note

    @friendly
    def classify(path, key):
        need_image(path)
        loaded = reg.get(key)
        logits, _, _, _ = reg.forward(loaded, path)
        probs = logits.softmax(dim=1)[0]
        p, i = probs.topk(min(5, probs.numel()))
        return top5_dict(loaded.meta["classes"], (i.tolist(), p.tolist()))

    @friendly
    def explain_one(path, method_name, key):
        need_image(path)
        if method_name not in METHODS:
            raise gr.Error(f"Unknown method {method_name!r}; choose one of {', '.join(METHODS)}.")
        loaded = reg.get(key)
        x, _ = loaded.prepare(path)
        with loaded.lock:
            return explain(loaded.model, x, None, method_name, meta=loaded.meta).overlay

    @friendly
    def checks(path, key, progress=gr.Progress()):
        need_image(path)
        loaded = reg.get(key)
        x, _ = loaded.prepare(path)
        progress(0.1, desc="cascading randomisation (fc8 down to conv1)")
        with loaded.lock:
            s = sanity_check(loaded.model, x, methods=CHECK_METHODS)
            progress(0.6, desc="deletion and insertion curves")
            f = faithfulness(loaded.model, x, target=s.target, methods=CHECK_METHODS)
        lines = ["| method | rank correlation after randomising conv1 (lower = passes) | deletion AUC | insertion AUC |",
                 "|---|---|---|---|"]
        for meth in CHECK_METHODS:
            lines.append(f"| {METHOD_LABELS[meth]} | {s.correlations[meth][-1]:.2f} | "
                         f"{f.deletion[meth]:.3f} | {f.insertion[meth]:.3f} |")
        text = "\n".join(lines) + ("\n\n" + loaded.notice if loaded.notice else "")
        return text, figure_to_image(s.figure), figure_to_image(f.figure)

    outs = [page.image, top5, heat, cam, notice]
    img.change(on_upload, [img, page.model_key, method], outs, api_name=False)
    page.model_key.change(on_upload, [img, page.model_key, method], outs, api_name=False)
    classify_btn.click(classify, [img, page.model_key], top5, api_name="classify")
    explain_btn.click(explain_one, [img, method, page.model_key], heat, api_name="explain")
    method.change(lambda p, m, k: explain_one(p, m, k) if p else gr.skip(),
                  [img, method, page.model_key], heat, api_name=False)
    checks_btn.click(checks, [img, page.model_key], [checks_text, sanity_img, faith_img], api_name=False)
