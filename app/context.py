"""The page every tab is built on: the server's services (models, the training slot, the one owner of model
work, the data set) and the components all tabs share. Built once in app.page.build_app."""
from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from alexnet.weights import WeightsError, imagenet_weights_path
from app.compute import Compute
from app.datasets import Datasets
from app.embedder import Embedder
from app.state import IMAGENET, UNTRAINED, Registry
from app.trainer import Trainer


@dataclass
class Page:
    """Components and services the tabs read: built once in main.build_app."""
    registry: Registry        # which models exist and which are loaded
    trainer: Trainer          # the server's one training slot
    compute: Compute          # where every pass runs: cheap ones apart from slow ones (the one owner of model work)
    model_key: gr.Dropdown    # the visitor's chosen model
    image: gr.State           # path of the visitor's current upload (shared by all tabs)
    data: str | None          # --data flag
    datasets: Datasets        # the image set in use, decoded once
    embedder: Embedder        # the fc7 map of that set per model (Embeddings, Two models, the tour)
    tmp: Path                 # this server's scratch folder for exports; removed at exit
    demo: gr.Blocks | None = None   # the page itself, for events that run when a visitor opens it
    lang: gr.State | None = None    # the visitor's language ("en" or "zh-CN"), for text handlers write (app.i18n)
    tabs: dict = field(default_factory=dict)   # tab id -> gr.Tab, for events that run when a tab is opened

    def scratch_file(self, name: str, keep_s: float = 600.0, now: float | None = None) -> Path:
        """A path in a fresh folder of this server's scratch, for a file handed to Gradio (which copies it
        into its own cache at once, under its content hash). The folders are grouped by the minute they were
        made; minutes older than `keep_s` are removed first, so the scratch stays small however long the
        server runs, and a call looks at a dozen minute folders, not at every file of the last ten minutes
        (it did: 50 visitors wrote ~20 files a second, and each call stat'ed them all, a third of the
        handlers' CPU). `now`: the clock, for tests."""
        minute = int((time.time() if now is None else now) // 60)
        for old in self.tmp.iterdir():
            if old.name.isdigit() and (minute - int(old.name)) * 60 > keep_s:
                shutil.rmtree(old, ignore_errors=True)    # another request may be removing it too
        bucket = self.tmp / str(minute)
        bucket.mkdir(exist_ok=True)
        return Path(tempfile.mkdtemp(dir=bucket)) / name

    def on_model_change(self, key: str, lang: str | None = None, progress=gr.Progress()):
        """The banner for the newly chosen model, in the visitor's language `lang`; choosing ImageNet downloads
        it now, with progress here. (main wraps it in `friendly`: a vanished checkpoint is a sentence, not a
        bare "Error".)"""
        if key == IMAGENET and not imagenet_weights_path().exists():
            try:
                self.registry.get(IMAGENET, progress)
            except WeightsError as e:
                gr.Warning(str(e))
                return (self.registry.banner(key, lang) + f"\n\n**{e}**", gr.Button(visible=False))
        return self.registry.banner(key, lang), gr.Button(visible=key == UNTRAINED)

    def banner(self, key: str | None, lang: str | None = None) -> str:
        """The banner alone, in `lang`: sent again when the page opens and when the visitor switches language."""
        return self.registry.banner(key or self.registry.default_key(), lang)

    def refresh_models(self, current: str | None = None) -> gr.Dropdown:
        """The model dropdown with every checkpoint on disk now, keeping the visitor's choice."""
        choices = self.registry.choices()
        keys = [k for _, k in choices]
        return gr.Dropdown(choices=choices, value=current if current in keys else keys[0])
