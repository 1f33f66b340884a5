"""AlexNet Explainer: `alexnet-explainer` (or `python app/main.py`) serves six tabs over alexnet/, viz/ and report/.

The flags are parsed before anything heavy is imported, so `--help` answers at once; the page is
built by app/page.py, and no model is loaded until a request needs one. Address: --host/--port,
else Gradio's own GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (how containers and hosted Spaces
configure a Gradio app), else 127.0.0.1:7860 (this machine only).

The packages are found because the project is installed (`pip install -e .`, see pyproject.toml);
nothing here edits sys.path.
"""
from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
import time

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# torch's helper threads sleep while they wait for the next op instead of spinning first (OpenMP's passive
# wait). A server's cores are shared with its own Python threads (the event loop, the handlers); a spinning
# helper takes a core they need, while the op it waits for waits for that core. Panel of 8 photos
# (benchmarks/omp_wait.py, 2 cores): beside a Python thread 600 against 881 ms; beside another busy process
# 482 against 796 ms, at half the CPU; alone 291 against 253 ms (a sleeping helper is woken for every op).
# 50 visitors with the long jobs: p95 about 10% lower. libgomp reads it once, when torch loads: hence here,
# before any import of torch. A value set by whoever starts the server wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
QUEUE = 64          # events waiting at most; more visitors are told the queue is full


def get_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        description="Serve the AlexNet Explainer: classify, explain and retrain AlexNet in the browser.",
        epilog="Examples:\n  alexnet-explainer\n  alexnet-explainer --weights imagenet\n"
               "  GRADIO_SERVER_NAME=0.0.0.0 alexnet-explainer      # reachable from other machines\n"
               "  alexnet-explainer --weights ~/.cache/alexnet-explainer/checkpoints/flowers.safetensors "
               "--data ~/flowers",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--weights", default=None,
                    help="'imagenet' (torchvision, downloaded once, 233 MB), 'untrained', a .safetensors checkpoint, "
                         "a torchvision .pth, or BVLC .npy/.npz arrays. Default: the newest checkpoint in the cache, "
                         "else cached ImageNet weights, else the flowers model shipped in assets/ (5 classes), "
                         "else an untrained model (clearly marked).")
    ap.add_argument("--data", default=None,
                    help="an ImageFolder tree for the Embeddings and Retrain tabs, or 'flowers-full' for the full "
                         "flower set (a 218 MB download, once). Default: $ALEXNET_DATA, else the full set if already "
                         "downloaded, else ../shared/data/flower_photos_256 beside a clone, else the flowers pack "
                         "shipped with the package (500 photos; works offline)")
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    ap.add_argument("--host", default=None,
                    help="address to bind (default: $GRADIO_SERVER_NAME, else 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=None, help="(default: $GRADIO_SERVER_PORT, else 7860)")
    ap.add_argument("--share", action="store_true", help="ask Gradio for a public share link (off by default)")
    ap.add_argument("--concurrency", type=int, default=2,
                    help="requests processed at once per event of the Filters, Layers and Embeddings tabs (default 2); "
                         "classify and explain passes run in two lanes instead, cheap apart from slow")
    return ap


def address(args: argparse.Namespace, environ=os.environ) -> tuple[str, int]:
    """Where to serve: the flags, else Gradio's environment variables, else 127.0.0.1:7860."""
    host = args.host or environ.get("GRADIO_SERVER_NAME") or "127.0.0.1"
    port = args.port or environ.get("GRADIO_SERVER_PORT") or 7860
    try:
        return host, int(port)
    except ValueError:
        raise ValueError(f"GRADIO_SERVER_PORT={port!r} is not a port number") from None


def bound_malloc(arenas: int = 2, mmap_threshold: int = 32 << 20, trim_threshold: int = 64 << 20) -> None:
    """glibc's malloc, set for a server whose tensors are allocated and freed by many threads.

    - `arenas`: glibc gives every thread that allocates an arena of its own (up to 8 per core), each
      keeping its freed blocks: with Gradio's dozens of handler threads RSS climbed far above what was in
      use. Two arenas keep it near the live memory.
    - `mmap_threshold`, `trim_threshold`: blocks up to 32 MB (a batch's activations and gradients: 9 MB
      after conv1 for 8 photos) come from the arenas and are reused, and an arena gives memory back to
      the system once 64 MB at its top are free: glibc's own rule (trim = 2 x mmap threshold) at its ceiling.
      Mapped fresh for every tensor (the 1 MB threshold this replaced), a panel of 8 photos faulted in
      97,000 pages (380 MB) each time: 263 ms of system CPU, 450 against 267 ms in all, for 130 MB more
      kept resident between panels (benchmarks/malloc_faults.py).
    Linux/glibc only; elsewhere nothing to do."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8     # from malloc.h
    libc.mallopt(M_ARENA_MAX, arenas)
    libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)
    libc.mallopt(M_TRIM_THRESHOLD, trim_threshold)


def server_threads() -> None:
    """Two settings for a server whose network passes share the process with Gradio's Python threads.

    - The GIL is handed over every 0.5 ms, not every 5 ms. A forward + backward gives the GIL back for each
      of its ~200 kernels and must win it again to dispatch the next; while Gradio's event loop and handler
      threads run Python, each win waited up to the switch interval. Beside one thread running Python, a
      panel of 8 photos took 1.4 s instead of 0.35 s alone, and 1.0 s at 0.5 ms; Grad-CAM's alone 1.8 s
      against 0.18 s, and 0.41 s at 0.5 ms (benchmarks/gil_switch.py, results/gil_switch.json).
    - Gradio recomputes its monitoring summary (a pandas groupby over up to 10,000 recorded events) after
      every event unless told otherwise; this app does not enable monitoring, so every 500 events is plenty.
    """
    sys.setswitchinterval(0.0005)
    os.environ.setdefault("GRADIO_ANALYTICS_CACHE_FREQUENCY", "500")


def main(argv=None) -> None:
    args = get_parser().parse_args(argv)      # --help and flag mistakes answer here, before Gradio or torch load
    bound_malloc()
    server_threads()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        host, port = address(args)
        try:
            from alexnet.images import MAX_BYTES
            from app.i18n import I18N
            from app.page import CSS, build_app, check_weights_arg
        except ModuleNotFoundError as e:
            if e.name not in ("alexnet", "app"):
                raise
            sys.exit("error: AlexNet Explainer is not installed in this Python; in the project folder run "
                     "`pip install -e .` (see the README), then `alexnet-explainer`")
        check_weights_arg(args.weights)
        demo = build_app(args.weights, args.data, args.device)
    except (RuntimeError, ValueError) as e:   # e.g. --device cuda without a GPU, a refused .pth
        sys.exit(f"error: {e}")
    demo.queue(default_concurrency_limit=args.concurrency, max_size=QUEUE)
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop` and friends stop it as Ctrl+C does
    code = 0
    try:
        # Threads for every queued event and a few more: the explain events wait in app.compute's lanes, not here.
        demo.launch(server_name=host, server_port=port, share=args.share, show_error=False, css=CSS, i18n=I18N,
                    max_file_size=MAX_BYTES, max_threads=QUEUE + 16, prevent_thread_lock=True)
        while demo.is_running:
            time.sleep(0.5)
    except OSError as e:                      # e.g. the port is taken
        print(f"error: cannot serve on {host}:{port}: {e}", file=sys.stderr)
        code = 1
    except KeyboardInterrupt:                 # wherever it lands, launch included: the finally below runs
        print("Stopping: closing server; queued passes are dropped.", flush=True)
    finally:
        demo.compute.shutdown()                 # running slow work stops at its next pass, so open requests end
        demo.close(verbose=False)             # the server, the queue and its heartbeats
        demo.compute.shutdown(wait=True)
        demo.scratch.cleanup()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    # Not a normal interpreter exit: Gradio's worker threads are daemons and may still be inside torch's
    # native code, and finalising the interpreter under them can abort the process ("terminate called
    # without an active exception", seen once in ten stops with requests in flight). All is written above.
    os._exit(code)

def _interrupt(signum, frame):
    raise KeyboardInterrupt

if __name__ == "__main__":
    main()
