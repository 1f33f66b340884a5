"""AlexNet Explainer: `python app/main.py` serves six tabs over alexnet/ and viz/.

Start-up parses flags and builds the page; no model is loaded until a request needs one.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # `python app/main.py` puts app/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from alexnet.images import MAX_BYTES  # noqa: E402
from app import tab_about, tab_classify, tab_embeddings, tab_filters, tab_layers, tab_retrain  # noqa: E402
from app.state import IMAGENET, UNTRAINED, Registry  # noqa: E402
from app.ui import Page, friendly  # noqa: E402

log = logging.getLogger("alexnet-explainer")
TITLE = "AlexNet Explainer"
TABS = (("Classify & Explain", "classify", tab_classify), ("Filters", "filters", tab_filters),
        ("Layers", "layers", tab_layers), ("Embeddings", "embeddings", tab_embeddings),
        ("Retrain", "retrain", tab_retrain), ("About", "about", tab_about))


def get_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Serve the AlexNet Explainer: classify, explain and retrain AlexNet in the browser.",
        epilog="Examples:\n  python app/main.py\n  python app/main.py --weights imagenet\n"
               "  python app/main.py --weights ~/.cache/alexnet-explainer/checkpoints/flowers.safetensors "
               "--data ~/flowers",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None,
                    help="'imagenet' (torchvision, downloaded once, 233 MB), 'untrained', a .safetensors checkpoint, "
                         "a torchvision .pth, or BVLC .npy/.npz arrays. Default: the newest checkpoint in the cache, "
                         "else cached ImageNet weights, else the flowers model shipped in assets/ (5 classes), "
                         "else an untrained model (clearly marked).")
    ap.add_argument("--data", default=None,
                    help="an ImageFolder tree for the Embeddings and Retrain tabs (default: $ALEXNET_DATA, "
                         "../shared/data/flower_photos_256, or a download of the TensorFlow flowers)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    ap.add_argument("--concurrency", type=int, default=2,
                    help="requests processed at once per event (default 2, one per CPU core on a small machine)")
    return ap


def build_app(weights: str | None = None, data: str | None = None, device: str = "auto",
              checkpoints_dir: str | None = None) -> gr.Blocks:
    """The whole page. Importable (tests build it on a free port); launched only under __main__."""
    registry = Registry(weights, data, device, checkpoints_dir)
    scratch = tempfile.TemporaryDirectory(prefix="alexnet-explainer-")   # cleaned when the app is collected or exits
    trainer = tab_retrain.Trainer(registry)
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
        page = Page(registry=registry, trainer=trainer, model_key=model_key, image=image, data=data,
                    tmp=Path(scratch.name), demo=demo)
        with gr.Tabs() as tabs:
            for title, tab_id, module in TABS:
                with gr.Tab(title, id=tab_id):
                    module.build(page)
        model_key.change(friendly(page.on_model_change), model_key, [banner, train_it], api_name=False)
        train_it.click(lambda: gr.Tabs(selected="retrain"), None, tabs, api_name=False)
        refresh.click(page.refresh_models, model_key, model_key, api_name=False)
    demo.scratch = scratch   # keeps the folder alive as long as the app
    return demo


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        check_weights_arg(args.weights)
        demo = build_app(args.weights, args.data, args.device)
    except (RuntimeError, ValueError) as e:   # e.g. --device cuda without a GPU, a refused .pth
        sys.exit(f"error: {e}")
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        demo.launch(server_name=args.host, server_port=args.port, share=args.share, show_error=False,
                    max_file_size=MAX_BYTES)
    except OSError as e:                      # e.g. the port is taken
        sys.exit(f"error: cannot serve on {args.host}:{args.port}: {e}")


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


if __name__ == "__main__":
    main()
