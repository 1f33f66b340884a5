"""The page: every tab over one model registry and one training slot, and the start-up checks.

app/main.py parses the flags first and imports this module only then, so `--help` never waits
for Gradio and torch to load.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from app import (gradio_files, gradio_sessions, tab_about, tab_attack, tab_classify, tab_compare, tab_concepts,
                 tab_embeddings, tab_filters, tab_layers, tab_retrain, tab_tricks, tour)
from app.compute import Compute
from app.context import Page
from app.datasets import Datasets
from app.embedder import Embedder
from app.i18n import lang_of, remember, switch, t, wire_switch
from app.state import IMAGENET, UNTRAINED, Registry
from app.trainer import Trainer
from app.ui import friendly

TITLE = "AlexNet Explainer"
# Tables of numbers read on a projector: a cell never breaks inside a number ("105,415,20 / 0"); the table
# scrolls sideways instead when the window is narrow.
CSS = ("#shape-table table td, #shape-table table th { white-space: nowrap; } #shape-table { overflow-x: auto; } "
       + tour.CSS)
TABS = (("classify", tab_classify), ("filters", tab_filters), ("layers", tab_layers), ("tricks", tab_tricks),
        ("concepts", tab_concepts), ("attack", tab_attack), ("compare", tab_compare), ("embeddings", tab_embeddings), ("retrain", tab_retrain), ("about", tab_about))   # titles: tab_<id>


def build_app(weights: str | None = None, data: str | None = None, device: str = "auto",
              checkpoints_dir: str | None = None) -> gr.Blocks:
    """The whole page. Importable (tests build it on a free port); launched only under __main__."""
    gradio_files.install()                     # identical pictures for two visitors: written atomically
    registry = Registry(weights, data, device, checkpoints_dir)
    # removed when the app is collected or exits; a file written meanwhile must not turn exit into a traceback
    scratch = tempfile.TemporaryDirectory(prefix="alexnet-explainer-", ignore_cleanup_errors=True)
    compute = Compute(registry)                                        # the one owner of model work
    datasets = Datasets(data)
    trainer = Trainer(registry, pause=compute.yield_to_cheap, thread=compute.thread)   # visitors' passes go first
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:   # uploads/outputs older than 1 h go
        lang = gr.State("en")          # the visitor's language for text handlers write (app.i18n)
        with gr.Row():
            gr.Markdown(f"# {TITLE}", scale=4)
            languages = switch()
        gr.Markdown(t("app_intro"))
        choices = registry.choices()
        with gr.Row():
            # allow_custom_value: the API may name a checkpoint trained after this page was built
            model_key = gr.Dropdown(choices=choices, value=choices[0][1], label=t("model"), scale=2, elem_id="model-key",
                                    allow_custom_value=True)
            refresh = gr.Button(t("refresh_models"), scale=0, size="sm")
        banner = gr.Markdown(registry.banner(choices[0][1]), elem_id="banner")
        train_it = gr.Button(t("train_untrained"), size="sm",
                             visible=choices[0][1] == UNTRAINED)
        image = gr.State(None)
        page = Page(registry=registry, trainer=trainer, compute=compute, model_key=model_key, image=image, data=data,
                    datasets=datasets, embedder=Embedder(datasets, compute), tmp=Path(scratch.name), demo=demo,
                    lang=lang)
        wire_tour = tour.build(page, tab_layers.lesson_zip)            # above the tabs: on a projector, first
        with gr.Tabs() as tabs:
            for tab_id, module in TABS:
                with gr.Tab(t(f"tab_{tab_id}"), id=tab_id, elem_id=f"tab-{tab_id}") as page.tabs[tab_id]:
                    module.build(page)
        wire_tour(tabs)
        # the banner is written in the visitor's language: when the page opens, on a switch, on a model change
        refresh_banner = (friendly(page.banner), [model_key, lang], banner)
        wire_switch(languages, lang, page.tabs, also=refresh_banner)
        demo.load(visitor_language, None, lang, api_name=False).then(*refresh_banner, api_name=False,
                                                                     show_progress="hidden")
        model_key.change(friendly(page.on_model_change), [model_key, lang], [banner, train_it], api_name=False)
        train_it.click(lambda: gr.Tabs(selected="retrain"), None, tabs, api_name=False)
        refresh.click(page.refresh_models, model_key, model_key, api_name=False)
    gradio_sessions.install(demo)   # a session's 273 component configs made when read, not on each API call
    demo.scratch = scratch   # keeps the folder alive as long as the app
    demo.compute = compute   # main() shuts it down when the server stops: queued slow work is dropped
    demo.page = page         # tests call the handlers (app.classify) with it, without a browser
    return demo


def visitor_language(request: gr.Request) -> str:
    """The language the browser asks for (its Accept-Language), for the text handlers write."""
    return remember(request, lang_of(request.headers.get("accept-language") if request else None))


def check_weights_arg(weights_arg: str | None) -> None:
    """Fail at start-up, in one line, on a --weights file that is missing or would be refused later;
    --weights imagenet downloads the weights now (tqdm bar), before the page is served."""
    if weights_arg == IMAGENET:
        from alexnet.weights import download_imagenet
        download_imagenet()                   # WeightsError (a ValueError) with one sentence when offline
        return
    if not weights_arg or weights_arg == UNTRAINED:
        return
    p = Path(weights_arg).expanduser()
    if not p.is_file():
        raise ValueError(f"--weights {weights_arg}: no such file")
    if p.suffix in (".pth", ".pt"):
        from alexnet.weights import safe_torch_load
        safe_torch_load(p)
