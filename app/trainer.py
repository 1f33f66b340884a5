"""The server's one training slot: start, watch, cancel (the Retrain tab draws it; app.page owns it).

One run at a time for the whole server, in a background thread: the Start handler only polls it,
so explanations keep working while it trains and other visitors see its state. The run gives way to
visitors' cheap passes (classify, saliency, Grad-CAM) before each step and each batch of its feature
pass (`pause`: app.compute.Compute.yield_to_cheap), so those answer in about their usual time.
"""
from __future__ import annotations

import logging
import threading
import time

import gradio as gr

from alexnet.train import Phase, Progress, TrainConfig, train
from app.i18n import current_lang, tr

log = logging.getLogger("alexnet-explainer")


class Trainer:
    """The server's single training slot: start, watch, cancel."""

    def __init__(self, registry, pause=None, thread=None):
        self.registry = registry
        self.pause = pause               # called before every step: lets visitors' requests go first
        # starts the run's thread (app.lanes.Lanes.thread gives it every core, whenever it starts)
        self._start_thread = thread or _plain_thread
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.cancel = threading.Event()
        self.points: list[dict] = []     # step-level reports
        self.epochs: list[dict] = []     # end-of-epoch reports
        self._val: dict = {}             # epoch -> its validation point
        self.last: Progress | None = None
        self.result = None
        self.error: str | None = None
        self.config: TrainConfig | None = None
        self.before = None               # the model fine-tuned from (an app.state.Loaded), for before/after
        self.started = 0.0
        self.finished = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, cfg: TrainConfig, before=None) -> None:
        with self._lock:
            if self.running:
                lang = current_lang()
                raise gr.Error(tr(lang, "err_training_running", status=self.status_line(lang)))
            self.cancel = threading.Event()
            self.points, self.epochs, self.last, self._val = [], [], None, {}
            self.result, self.error, self.config, self.before = None, None, cfg, before
            self.started, self.finished = time.time(), 0.0
            self._thread = self._start_thread(lambda: self._run(cfg), "alexnet-train")

    def _progress(self, p: Progress) -> None:
        self.last = p
        if p.phase is Phase.TRAIN and p.loss is not None:
            self.points.append(dict(step=p.step, loss=p.loss, acc=p.acc or 0.0))
        if p.phase is Phase.VAL and p.val_acc is not None:
            # the engine reports 'val' before validating (val_acc still the last epoch's) and after it:
            # keyed by epoch, the later, fresh value wins
            self._val[p.epoch] = dict(step=p.step, val_acc=p.val_acc, epoch=p.epoch)
            self.epochs = list(self._val.values())

    def _run(self, cfg: TrainConfig) -> None:
        try:
            self.result = train(cfg, progress=self._progress, cancel=self.cancel, pause=self.pause)
        except Exception as e:  # the visitor sees a sentence; the server log keeps the traceback
            log.exception("training failed")
            self.error = str(e) or type(e).__name__
        finally:
            self.finished = time.time()

    def time_split(self, lang: str | None = None) -> str:
        """'decode 12 s, features 41 s, ...' with the phases named in the visitor's language."""
        return self.last.time_split({str(p): tr(lang, f"phase_{p}") for p in Phase}) if self.last else ""

    def status_line(self, lang: str | None = None) -> str:
        p = self.last
        if p is None:
            return tr(lang, "status_starting" if self.running else "status_idle")
        if p.phase in (Phase.DECODE, Phase.FEATURES):
            return tr(lang, "status_images", phase=tr(lang, f"phase_{p.phase}"), step=p.step, steps=p.steps or "?",
                      split=self.time_split(lang))
        if p.phase is Phase.MODEL:
            return tr(lang, "status_model", split=self.time_split(lang))
        parts = [tr(lang, "status_epoch", epoch=p.epoch, epochs=p.epochs),
                 tr(lang, "status_step", step=p.step, steps=p.steps or "?")]
        if p.loss is not None:
            parts.append(tr(lang, "status_loss", loss=f"{p.loss:.3f}"))
        if p.val_acc is not None:
            parts.append(tr(lang, "status_val", acc=f"{p.val_acc:.1%}"))
        if p.img_per_s:
            parts.append(tr(lang, "status_speed", n=f"{p.img_per_s:.0f}"))
        if p.eta_s is not None:
            parts.append(tr(lang, "status_eta", s=f"{p.eta_s:.0f}"))
        return tr(lang, "status_join").join(parts)


def _plain_thread(target, name: str) -> threading.Thread:
    t = threading.Thread(target=target, daemon=True, name=name)
    t.start()
    return t
