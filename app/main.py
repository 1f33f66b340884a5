"""AlexNet Explainer: `python app/main.py` serves six tabs over alexnet/, viz/ and report/.

The flags are parsed before anything heavy is imported, so `--help` answers at once; the page is
built by app/page.py, and no model is loaded until a request needs one. Address: --host/--port,
else Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (how containers and hosted Spaces
configure a Gradio app), else 127.0.0.1:7860 (this machine only).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:          # `python app/main.py` puts app/ first on the path, not the repo
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


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
    ap.add_argument("--host", default=None,
                    help="address to bind (default: $GRADIO_SERVER_NAME, else 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=None, help="(default: $GRADIO_SERVER_PORT, else 7860)")
    ap.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    ap.add_argument("--concurrency", type=int, default=2,
                    help="requests processed at once per event (default 2, one per CPU core on a small machine)")
    return ap


def address(args: argparse.Namespace, environ=os.environ) -> tuple[str, int]:
    """Where to serve: the flags, else Gradio's environment variables, else 127.0.0.1:7860."""
    host = args.host or environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = args.port or environ.get("GRADIO_SERVER_PORT") or 7860
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"GRADIO_SERVER_PORT={port!r} is not a port number") from None


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)      # --help and flag mistakes answer here, before Gradio or torch load
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        host, port = address(args)
        from alexnet.images import MAX_BYTES
        from app.page import build_app, check_weights_arg
        check_weights_arg(args.weights)
        demo = build_app(args.weights, args.data, args.device)
    except (RuntimeError, ValueError) as e:   # e.g. --device cuda without a GPU, a refused .pth
        sys.exit(f"error: {e}")
    demo.queue(default_concurrency_limit=args.concurrency, max_size=64)
    try:
        demo.launch(server_name=host, server_port=port, share=args.share, show_error=False,
                    max_file_size=MAX_BYTES)
    except OSError as e:                      # e.g. the port is taken
        sys.exit(f"error: cannot serve on {host}:{port}: {e}")


if __name__ == "__main__":
    main()
