"""What every tab shares: the page context and the one place user errors become messages."""
from __future__ import annotations

import functools
import inspect
import logging
import shutil
import tempfile
import time
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from alexnet.errors import UserError
from alexnet.weights import WeightsError
from app.lanes import ShuttingDown, all_cores

log = logging.getLogger("alexnet-explainer")
USER_ERRORS = (UserError,)   # the project's own exceptions for what the visitor can fix (alexnet.errors)


@dataclass
class Page:
    """Components and services the tabs read: built once in main.build_app."""
    registry: object          # app.state.Registry
    trainer: object           # app.tab_retrain.Trainer
    lanes: object             # app.lanes.Lanes: where passes run, cheap ones apart from slow ones
    model_key: gr.Dropdown    # the visitor's chosen model
    image: gr.State           # path of the visitor's current upload (shared by all tabs)
    data: str | None          # --data flag
    datasets: object          # app.datasets.Datasets: the image set in use, decoded once
    tmp: Path                 # this server's scratch folder for exports; removed at exit
    demo: gr.Blocks | None = None   # the page itself, for events that run when a visitor opens it
    tabs: dict = field(default_factory=dict)   # tab id -> gr.Tab, for events that run when a tab is opened

    def scratch_file(self, name: str, keep_s: float = 600.0) -> Path:
        """A path in a fresh folder of this server's scratch, for a file handed to Gradio (which copies it
        into its own cache at once, under its content hash). Folders older than `keep_s` are removed
        first, so the scratch stays small however long the server runs."""
        now = time.time()
        for old in self.tmp.iterdir():
            try:
                if now - old.stat().st_mtime > keep_s:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass                                  # another request removed it first
        return Path(tempfile.mkdtemp(dir=self.tmp)) / name

    def on_model_change(self, key: str, progress=gr.Progress()):
        """The banner for the newly chosen model; choosing ImageNet downloads it now, with progress here.
        (main wraps it in `friendly`: a vanished checkpoint is a sentence, not a bare "Error".)"""
        from app.state import IMAGENET, UNTRAINED
        from alexnet.weights import imagenet_weights_path
        if key == IMAGENET and not imagenet_weights_path().exists():
            try:
                self.registry.get(IMAGENET, progress)
            except WeightsError as e:
                gr.Warning(str(e))
                return (self.registry.banner(key) + f"\n\n**{e}**", gr.Button(visible=False))
        return self.registry.banner(key), gr.Button(visible=key == UNTRAINED)

    def refresh_models(self, current: str | None = None) -> gr.Dropdown:
        """The model dropdown with every checkpoint on disk now, keeping the visitor's choice."""
        choices = self.registry.choices()
        keys = [k for _, k in choices]
        return gr.Dropdown(choices=choices, value=current if current in keys else keys[0])


def friendly(fn):
    """Turn what the visitor did wrong into a gr.Error with its sentence; log the rest, show no traceback."""
    def translate(e: Exception) -> gr.Error:
        # print_exception=False: Gradio would print a traceback for every gr.Error; a visitor's mistake is
        # not the server's, and an unexpected error is logged here once, with its traceback
        if isinstance(e, gr.Error):
            e.print_exception = False
            return e
        if isinstance(e, USER_ERRORS):
            return gr.Error(str(e), print_exception=False)
        if isinstance(e, (ShuttingDown, CancelledError)):      # the server is stopping: expected
            log.info("%s stopped: the server is shutting down", fn.__name__)
            return gr.Error(str(ShuttingDown()), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error("Something went wrong on the server (it is logged there). Please try another image or setting.",
                        print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*a, **k):
            all_cores()                   # Gradio's thread may have started during a one-core slow pass
            try:
                yield from fn(*a, **k)
            except Exception as e:
                raise translate(e) from None
        return gen

    @functools.wraps(fn)
    def wrapper(*a, **k):
        all_cores()
        try:
            return fn(*a, **k)
        except Exception as e:
            raise translate(e) from None
    return wrapper


def need_image(path):
    if not path:
        raise gr.Error("Upload an image first (Classify & Explain tab), or pick one of the examples.")
    return path


class UploadImage(gr.Image):
    """gr.Image that hands us the uploaded file's path without opening it.

    Gradio's own preprocessing opens every upload with PIL first, so a broken file
    would fail there with a generic error; our `alexnet.images.open_image` validates
    it instead and says what is wrong.
    """
    is_template = True   # the browser still draws the standard Image component

    def preprocess(self, payload):
        if payload is None:
            return None
        if getattr(payload, "path", None):
            return str(payload.path)
        try:
            return super().preprocess(payload)
        except Exception as e:
            raise gr.Error(f"That upload could not be read as an image ({type(e).__name__}).") from None
