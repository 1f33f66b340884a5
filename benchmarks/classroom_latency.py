"""How long does a teacher wait for each classroom view? Prints one JSON object (and writes it with --out).

    ALEXNET_IGNORE_SHARED=1 python benchmarks/classroom_latency.py [--repeats 5] [--out benchmarks/results/classroom_latency.json]

The page is built as the app builds it (app.page.build_app: the shipped flowers model, the app's one owner of
model work) and every view is the handler function the page calls, on the held-out rose shipped with the app:
the network diagram, a step of the layer walk, a unit's arithmetic, the formula live, the five tricks, each
tour step (in English and in 简体中文) and the lesson pack. "first" is the first call on a fresh page (the model
loaded, the photo's forward pass made: what the first click of a lesson costs); p50 / max are over --repeats
further calls. The load average before the run says what else was running.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from alexnet.model import LAYERS


def timed(fn, repeats: int) -> dict:
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    runs = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t0)
    return dict(first_s=round(first, 4), p50_s=round(statistics.median(runs), 4), max_s=round(max(runs), 4))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5, help="calls after the first, per view (default 5)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    load_before = [round(v, 2) for v in os.getloadavg()]     # 1, 5, 15 min: what else was running
    t_start = time.perf_counter()
    from app.page import build_app
    from app.tab_layers import layer_step, lesson_zip, network, unit_view
    from app.tab_tricks import show_all
    from app.tour import STEPS, photo_of, view
    from app.lesson_words import formula_words
    from viz import formula
    lang_of_run = "en"

    with tempfile.TemporaryDirectory(prefix="classroom-bench-") as tmp:
        t0 = time.perf_counter()
        page = build_app(checkpoints_dir=str(Path(tmp) / "ckpt")).page
        build_s = time.perf_counter() - t0
        key = page.registry.choices()[0][1]
        photo = photo_of(None)                                  # the held-out rose shipped with the app
        views = {}
        # the first click of a lesson: the model loaded and the photo's forward pass made inside it
        views["diagram (Layers tab opens)"] = timed(lambda: network(page, photo, key), args.repeats)
        views["a layer's step (block clicked, Next)"] = timed(
            lambda: [layer_step(page, i, photo, key) for i in (LAYERS.index("conv3"),)], args.repeats)
        views["a unit's arithmetic (conv1, a click)"] = timed(
            lambda: unit_view(page, photo, key, "conv1", 0, None, None, click=(100.0, 80.0)), args.repeats)
        views["a unit's arithmetic (fc8)"] = timed(lambda: unit_view(page, photo, key, "fc8", 0, 0, 0), args.repeats)
        views["the formula, live (one change)"] = timed(
            lambda: (formula_words(lang_of_run, 224, 11, 4, 0), formula.windows(224, 11, 4, 0)), args.repeats)
        views["the paper's five tricks"] = timed(lambda: show_all(page, photo, key, 0), args.repeats)
        tour = {}
        for lang in ("en", "zh-CN"):
            for i, step in enumerate(STEPS):
                tour[f"{lang} {i + 1} {step.id}"] = timed(lambda: view(page, i, photo, key, lang), args.repeats)
        views["lesson pack (.zip)"] = timed(lambda: lesson_zip(page, photo, key), max(1, args.repeats // 2))
        page.compute.shutdown()
    worst_tour = max(tour.items(), key=lambda kv: kv[1]["p50_s"])
    result = dict(
        benchmark="classroom_latency", what="seconds a teacher waits for each classroom view (handlers the page "
        "calls, shipped flowers model, held-out rose)", repeats=args.repeats, page_build_s=round(build_s, 2),
        views=views, tour_steps=tour, tour_worst_step=dict(step=worst_tour[0], **worst_tour[1]),
        tour_total_p50_s=round(sum(v["p50_s"] for k, v in tour.items() if k.startswith("en ")), 2),
        machine=f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
                f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}",
        threads=torch.get_num_threads(), python=platform.python_version(), load_average_before=load_before,
        load_average_after=[round(v, 2) for v in os.getloadavg()], wall_s=round(time.perf_counter() - t_start, 1))
    text = json.dumps(result, indent=1, ensure_ascii=False)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main()
