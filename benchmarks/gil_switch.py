"""How long does a batched panel (8 photos, forward + backward) take beside a thread running Python,
at several GIL switch intervals? Prints one JSON line; app/main.py's `server_threads` cites it.

    python benchmarks/gil_switch.py [--repeats 5] [--out benchmarks/results/gil_switch.json]

A forward + backward gives the GIL back for each kernel and must win it again to dispatch the next.
While another thread runs Python (a web server's event loop, its handlers), each win waits up to
the switch interval (sys.getswitchinterval(), 5 ms by default). The "spinner" is the worst case of
such a thread: a loop that never blocks. Uses the shipped flowers model (random photos: the cost of a
pass does not depend on what the photo shows), torch's default thread count, nothing else running.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import threading

import torch

from alexnet.compact import SHIPPED, load_compact
from bench_io import emit, median_ms
from viz.attribution import panels

INTERVALS = (0.005, 0.001, 0.0005, 0.0002)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    model, meta = load_compact(SHIPPED)
    model.eval()
    x = torch.randn(8, 3, meta["input_size"], meta["input_size"], generator=torch.Generator().manual_seed(0))

    def full():
        panels(model, x, [None] * 8, meta=meta)

    def gradcam_only():
        panels(model, x, [None] * 8, meta=meta, saliency=False)

    default = sys.getswitchinterval()
    out = dict(benchmark="gil_switch", what="viz.attribution.panels of 8 photos on the shipped model",
               threads=torch.get_num_threads(), cpus=os.cpu_count(), python=platform.python_version(),
               torch=torch.__version__, load_average_before=[round(v, 2) for v in os.getloadavg()],
               alone_ms=dict(full=median_ms(full, args.repeats), gradcam_only=median_ms(gradcam_only, args.repeats)),
               beside_a_python_thread_ms={})
    stop = threading.Event()

    def spin():
        i = 0
        while not stop.is_set():
            i += 1
    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    try:
        for interval in INTERVALS:
            sys.setswitchinterval(interval)
            out["beside_a_python_thread_ms"][f"{interval * 1e3:g} ms"] = dict(
                full=median_ms(full, args.repeats), gradcam_only=median_ms(gradcam_only, args.repeats))
    finally:
        stop.set()
        spinner.join()
        sys.setswitchinterval(default)
    return emit(out, args.out)


if __name__ == "__main__":
    main()
