"""The page: every tab over one model registry and one training slot, and the start-up checks.

app/main.py parses the flags first and imports this module only then, so `--help` never waits
for Gradio and torch to load.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import gradio as gr

from app import tab_about, tab_classify, tab_embeddings, tab_filters, tab_layers, tab_retrain, tab_tricks
from app.compute import Compute
from app.context import Page
from app.datasets import Datasets
from app.state import IMAGENET, UNTRAINED, Registry
from app.trainer import Trainer
from app.ui import friendly

TITLE = "AlexNet Explainer"
# Tables of numbers read on a projector: a cell never breaks inside a number ("105,415,20 / 0"); the table
# scrolls sideways instead when the window is narrow.
CSS = "#shape-table table td, #shape-table table th { white-space: nowrap; } #shape-table { overflow-x: auto; }"
TABS = (("Classify & Explain", "classify", tab_classify), ("Filters", "filters", tab_filters),
        ("Layers", "layers", tab_layers), ("Paper's tricks", "tricks", tab_tricks), ("Embeddings", "embeddings", tab_embeddings),
        ("Retrain", "retrain", tab_retrain), ("About", "about", tab_about))


def build_app(weights: str | None = None, data: str | None = None, device: str = "auto",
              checkpoints_dir: str | None = None) -> gr.Blocks:
    """The whole page. Importable (tests build it on a free port); launched only under __main__."""
    registry = Registry(weights, data, device, checkpoints_dir)
    # removed when the app is collected or exits; a file written meanwhile must not turn exit into a traceback
    scratch = tempfile.TemporaryDirectory(prefix="alexnet-explainer-", ignore_cleanup_errors=True)
    compute = Compute(registry)                                        # the one owner of model work
    trainer = Trainer(registry, pause=compute.yield_to_cheap, thread=compute.thread)   # visitors' passes go first
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600)) as demo:   # uploads/outputs older than 1 h go
        gr.Markdown(f"# {TITLE}\nThe 2012 network of Krizhevsky, Sutskever and Hinton, made visible: "
                    "upload a photo and follow it through the layers.")
        choices = registry.choices()
        with gr.Row():
            # allow_custom_value: the API may name a checkpoint trained after this page was built
            model_key = gr.Dropdown(choices=choices, value=choices[0][1], label="Model", scale=2, elem_id="model-key",
                                    allow_custom_value=True)
            refresh = gr.Button("Refresh model list", scale=0, size="sm")
        banner = gr.Markdown(registry.banner(choices[0][1]), elem_id="banner")
        train_it = gr.Button("Train this untrained model on the flowers (Retrain tab)", size="sm",
                             visible=choices[0][1] == UNTRAINED)
        image = gr.State(None)
        page = Page(registry=registry, trainer=trainer, compute=compute, model_key=model_key, image=image, data=data,
                    datasets=Datasets(data), tmp=Path(scratch.name), demo=demo)
        with gr.Tabs() as tabs:
            for title, tab_id, module in TABS:
                with gr.Tab(title, id=tab_id) as page.tabs[tab_id]:
                    module.build(page)
        model_key.change(friendly(page.on_model_change), model_key, [banner, train_it], api_name=False)
        train_it.click(lambda: gr.Tabs(selected="retrain"), None, tabs, api_name=False)
        refresh.click(page.refresh_models, model_key, model_key, api_name=False)
    demo.scratch = scratch   # keeps the folder alive as long as the app
    demo.compute = compute   # main() shuts it down when the server stops: queued slow work is dropped
    demo.page = page         # tests call the handlers (app.classify) with it, without a browser
    return demo


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
