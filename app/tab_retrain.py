"""Retrain: fine-tune or train from scratch on an image folder, with live curves and a cancel button.

The run itself is the server's one training slot (app.trainer); after it, the before/after views
(held-out evaluation, conv1, Grad-CAM, the held-out photos' drift in fc7) are jobs of app.compute.
"""
from __future__ import annotations

import time
from pathlib import Path

import gradio as gr

from alexnet.data import decode_folder, find_data_dir, list_images
from alexnet.estimate import estimate, human
from alexnet.pack import is_pack
from alexnet.train import FINETUNE_DEPTHS, TrainConfig
from app import datasets
from app.context import Page
from app.i18n import current_lang, t
from app.i18n import tr as in_lang
from app.state import UNTRAINED
from app.trainer import Trainer
from app.ui import friendly
from viz.filters import compare
from viz.plots import training_curves
from viz.retraining import gradcam_before_after, held_out, held_out_drift


def _summary(tr: Trainer, lang: str | None = None) -> str:
    """The status line in the visitor's language: the run now, or how the last one ended."""
    if tr.running:
        return in_lang(lang, "retrain_training", status=tr.status_line(lang))
    if tr.error:
        return in_lang(lang, "retrain_error", error=tr.error)
    if tr.result is None:
        return in_lang(lang, "retrain_no_run")
    r = tr.result
    if r.cancelled:
        return in_lang(lang, "retrain_cancelled")
    best = max((h.get("val_acc", 0.0) for h in r.history), default=float("nan"))
    text = in_lang(lang, "retrain_done", seconds=f"{(tr.finished or time.time()) - tr.started:.0f}", best=f"{best:.1%}",
                   name=Path(r.best_checkpoint or r.checkpoint).name)
    if tr.last is not None and tr.last.phase_seconds:
        text += "\n\n" + in_lang(lang, "retrain_time_split", split=tr.time_split(lang)) + (
            in_lang(lang, "retrain_cached") if r.meta.get("features_cached") else "")
    if tr.config is not None and tr.config.recipe == "lesson" and tr.config.mode == "scratch":
        chance = 1 / max(1, len(r.meta.get("classes") or [1, 1]))
        text += "\n\n" + in_lang(lang, "retrain_lesson", chance=f"{chance:.0%}")
    n_val = (r.meta.get("split") or {}).get("n_val")
    if tr.config is not None and is_pack(tr.config.data or "") and n_val:
        text += "\n\n" + in_lang(lang, "retrain_pack", n_val=n_val, one=f"{1 / n_val:.0%}")
    skipped = r.meta.get("skipped") or []
    if skipped:
        names = ", ".join(Path(p[0] if isinstance(p, (list, tuple)) else p).name for p in skipped[:5])
        text += "\n\n" + in_lang(lang, "retrain_skipped", n=len(skipped), names=names + ("..." if len(skipped) > 5 else ""))
    return text


def build(page: Page) -> None:
    tr: Trainer = page.trainer
    reg = page.registry
    gr.Markdown(t("retrain_intro"))
    datasets.row(page)
    with gr.Row():
        data = gr.Textbox(label=t("retrain_data"), value=page.data or "",
                          placeholder=t("retrain_data_placeholder"))
        mode = gr.Radio([(t("retrain_mode_finetune"), "finetune"), (t("retrain_mode_scratch"), "scratch")],
                        value="finetune", label=t("retrain_mode"))
    depth = gr.Radio([(t(f"retrain_depth_{value}"), value) for value, _ in FINETUNE_DEPTHS],
                     value=FINETUNE_DEPTHS[0][0], label=t("retrain_depth"), elem_id="train-depth")
    with gr.Row():
        epochs = gr.Number(value=0, precision=0, minimum=0, maximum=500,
                           label=t("retrain_epochs"))
        recipe = gr.Radio([(t(f"retrain_recipe_{r}"), r) for r in ("fast", "lesson", "modern", "paper")],
                          value="fast", label=t("retrain_recipe"))
        lr = gr.Number(value=0, minimum=0, maximum=1.0, label=t("retrain_lr"))
        batch = gr.Number(value=0, precision=0, minimum=0, maximum=1024, label=t("retrain_batch"))
        limit = gr.Number(value=0, precision=0, minimum=0, label=t("retrain_limit"))
    with gr.Row():
        estimate_btn = gr.Button(t("retrain_estimate"))
        estimate_text = gr.Markdown(elem_id="train-estimate")
    with gr.Row():
        start = gr.Button(t("retrain_start"), variant="primary")
        cancel = gr.Button(t("retrain_cancel"), variant="stop")
        watch = gr.Button(t("retrain_watch"))
    status = gr.Markdown(t("retrain_idle"), elem_id="train-status")
    curves = gr.Image(label=t("retrain_curves"), type="pil", interactive=False, elem_id="curves")
    with gr.Row():
        cm = gr.Image(label=t("retrain_confusion"), type="pil", interactive=False, elem_id="confusion")
        wrong = gr.Gallery(label=t("retrain_misclassified"), columns=4, height="auto")
    with gr.Row():
        filters = gr.Image(label=t("retrain_conv1"), type="pil", interactive=False)
        cams = gr.Gallery(label=t("retrain_gradcam"), columns=2, height="auto")
    drift_img = gr.Image(label=t("retrain_drift"), type="pil",
                         interactive=False, elem_id="drift")

    drawn: dict = {}                              # the last picture of the curves and the points it shows

    def curves_picture():
        """(what it shows, the curves picture), redrawn only when the run has reported new points: every watcher
        polls once a second, and a matplotlib figure is ~50 ms of CPU under the GIL visitors' requests need."""
        key = (id(tr.points), len(tr.points), len(tr.epochs))
        if drawn.get("key") != key:
            drawn["picture"], drawn["key"] = training_curves(tr.points, tr.epochs), key
        return key, drawn["picture"]

    def poll(lang):
        """Yield live state until the run ends (also used by visitors who did not start it); the curves only when
        they changed (an unchanged picture would be encoded and sent again every second)."""
        shown = None
        while tr.running:
            key, picture = curves_picture()
            yield _summary(tr, lang), picture if key != shown else gr.skip(), None, None, None, None, None
            shown = key
            time.sleep(1.0)
        yield _summary(tr, lang), curves_picture()[1], None, None, None, None, None

    def config(folder, mode_v, depth_v, recipe_v, epochs_v, lr_v, batch_v, limit_v, key) -> TrainConfig:
        root = find_data_dir(folder.strip() or page.data or None)   # refuses missing or non-directory paths
        if mode_v == "finetune" and key == UNTRAINED:
            raise gr.Error(in_lang(current_lang(), "err_finetune_untrained"))
        return TrainConfig(data=str(root), mode=mode_v, weights=None if mode_v == "scratch" else reg.resolve(key),
                           freeze=depth_v or FINETUNE_DEPTHS[0][0],
                           recipe=recipe_v, epochs=int(epochs_v) or None, lr=float(lr_v) or None,
                           batch_size=int(batch_v) or None, limit=int(limit_v) or None, device=reg.device.type)

    @friendly
    def estimate_time(folder, mode_v, depth_v, recipe_v, epochs_v, lr_v, batch_v, limit_v, key, lang,
                      progress=gr.Progress()):
        if tr.running:   # timing steps now would slow the run and be slowed by it
            return in_lang(lang, "retrain_estimate_running")
        cfg = config(folder, mode_v, depth_v, recipe_v, epochs_v, lr_v, batch_v, limit_v, key)
        paths, _, classes = list_images(cfg.data)
        progress(0.2, desc=in_lang(lang, "retrain_timing"))
        est = estimate(cfg, len(paths), len(classes))
        sizes = sorted(set(est.sizes))
        how = (in_lang(lang, "retrain_estimate_sizes", sizes=", ".join(map(str, sizes))) if mode_v == "scratch" else
               in_lang(lang, "retrain_estimate_pass", seconds=f"{est.per_epoch[0] - est.per_epoch[-1]:.0f}")
               if len(est.per_epoch) > 1 and est.per_epoch[0] > est.per_epoch[-1] else "")
        return in_lang(lang, "retrain_estimate", about=human(est.seconds), epochs=len(est.sizes), n=len(paths), how=how)

    @friendly
    def run(folder, mode_v, depth_v, recipe_v, epochs_v, lr_v, batch_v, limit_v, key, image_path, lang):
        cfg = config(folder, mode_v, depth_v, recipe_v, epochs_v, lr_v, batch_v, limit_v, key)
        before = reg.get(key) if mode_v == "finetune" else None   # the model fine-tuned from, for before/after
        tr.start(cfg, before)
        last = None
        for last in poll(lang):
            yield last
        yield results(image_path, lang)

    def results(image_path, lang):
        """After the run: confusion matrix, misclassified examples, conv1 and Grad-CAM before/after."""
        base = (_summary(tr, lang), curves_picture()[1])
        r = tr.result
        if r is None or r.cancelled or not (r.best_checkpoint or r.checkpoint):
            return base + (None, None, None, None, None)
        ckpt = reg.key_for(r.best_checkpoint or r.checkpoint)
        reg.forget(ckpt)
        after = reg.get(ckpt)
        decoded = decode_folder(tr.config.data)
        jobs = page.compute                       # each view runs the network: a job on the models' replicas
        report = jobs.job(after, held_out, after.meta, decoded)
        before = tr.before                        # the Loaded it was fine-tuned from; None from scratch
        bmeta = before.meta if before is not None else None
        conv = jobs.pair(after, before, lambda net, old: compare(old if old is not None else net, net))["image"]
        cam_items = []
        if image_path:
            x, _ = after.prepare(image_path)
            cam_items = jobs.pair(after, before, lambda net, old: gradcam_before_after(
                [("before", old, bmeta), ("after", net, after.meta)], x))
        moved = None
        if before is not None:                    # fine-tuning: the same photos, mapped by both models
            moved = jobs.pair(after, before, lambda net, old: held_out_drift(old, bmeta, net, after.meta, decoded)).image
        return base + (report.confusion, report.misclassified, conv, cam_items, moved)

    def do_cancel(lang):
        if not tr.running:
            return in_lang(lang, "retrain_not_running") + _summary(tr, lang)
        tr.cancel.set()
        return in_lang(lang, "retrain_cancelling")

    settings = [data, mode, depth, recipe, epochs, lr, batch, limit, page.model_key]
    # On a click only: timing real steps costs seconds of CPU, and must not run behind every keystroke.
    estimate_btn.click(estimate_time, settings + [page.lang], estimate_text, api_name=False, concurrency_limit=1,
                       trigger_mode="always_last")
    outs = [status, curves, cm, wrong, filters, cams, drift_img]
    start.click(run, settings + [page.image, page.lang], outs,
                api_name="train", concurrency_limit=None,
                # Gradio ignores a click while this button's last event is still finishing ("once");
                # the Trainer itself refuses a second concurrent run, so every click may reach it
                trigger_mode="multiple",
                ).then(page.refresh_models, page.model_key, page.model_key, api_name=False)   # the new checkpoint is selectable
    cancel.click(do_cancel, page.lang, status, api_name=False, concurrency_limit=None)
    watch.click(poll, page.lang, outs, api_name=False, concurrency_limit=None)
