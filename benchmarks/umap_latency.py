"""How long the Embed tab waits: UMAP fit of a whole dataset's fc7 features, and placing one upload.

Target (3,667 flowers, 2 CPU cores): fit <= 5 s once numba's JIT is warm, transform <= 0.5 s.

    python benchmarks/umap_latency.py                       # untrained paper model, the shared flowers
    python benchmarks/umap_latency.py --weights ckpt.safetensors --baseline

The fc7 pass itself (minutes on a CPU) is cached on disk by alexnet.features and reported
separately. Cold starts: two fresh processes each time their first whole map (import, fit,
place one photo): the first after emptying the numba cache (a machine's first map ever), the
second with it filled (every later server start); then this process times warm fits. `--baseline` also times
umap-learn's defaults (metric="cosine" on raw fc7), the slow path this module avoids.
Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import statistics
import sys
import time
import warnings


import numpy as np  # noqa: E402
import torch  # noqa: E402

from alexnet import features as F  # noqa: E402
from alexnet import weights  # noqa: E402
from alexnet.data import decode_folder, find_data_dir  # noqa: E402
from alexnet.model import build  # noqa: E402
from viz import embedding as E  # noqa: E402


def load_model(source: str | None, width: float):
    """A checkpoint via alexnet.weights.load, else an untrained paper model (seed 0) with ImageNet statistics."""
    if source:
        model, meta = weights.load(source)
        return model.eval(), meta["mean"], meta["std"], meta["input_size"], str(source)
    torch.manual_seed(0)
    model = build("paper", 1000, width=width).eval()
    return model, weights.IMAGENET_MEAN, weights.IMAGENET_STD, model.spec.input_size, f"untrained paper, width {width}"


def first_map(key: str) -> float:
    """In a fresh process: import umap (numba cache on), fit the whole map, place one row; print the seconds."""
    t0 = time.perf_counter()
    arrays = F.load(key)
    feats, labels = arrays["fc7"], np.arange(len(arrays["fc7"])) % 5
    E.place(E.fit_map(feats, labels, [str(i) for i in range(5)], seed=0), feats[0])
    seconds = round(time.perf_counter() - t0, 2)
    print(json.dumps(dict(first_map_s=seconds)))
    return seconds


def cold_first_map(key: str) -> float:
    out = subprocess.run([sys.executable, __file__, "--first-map", key], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["first_map_s"]


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=None, help="image folder (default: alexnet.data.find_data_dir())")
    ap.add_argument("--weights", default=None, help="checkpoint to embed with (default: untrained paper model)")
    ap.add_argument("--width", type=float, default=1.0, help="width of the untrained model (default 1.0)")
    ap.add_argument("--repeats", type=int, default=3, help="warm fits to time (default 3)")
    ap.add_argument("--baseline", action="store_true", help="also time umap-learn's defaults on raw fc7")
    ap.add_argument("--first-map", default=None, metavar="KEY", help=argparse.SUPPRESS)  # child: one cold map
    args = ap.parse_args(argv)
    if args.first_map:
        return first_map(args.first_map)

    data_dir = find_data_dir(args.data)
    decoded, decode_s = timed(lambda: decode_folder(data_dir))
    model, mean, std, size, model_name = load_model(args.weights, args.width)
    key = E.fc7_key(model, decoded.key or F.data_hash(decoded.paths), mean, std, size)
    cached = F.load(key) is not None
    feats, features_s = timed(lambda: E.fc7_features(model, decoded.images, mean, std, size, cache_key=key))
    labels = decoded.labels.numpy()

    shutil.rmtree(weights.cache_dir() / "numba", ignore_errors=True)      # as on a machine that never drew a map
    cold = [cold_first_map(key) for _ in range(2)]                         # compile + write, then read the cache
    _, jit_s = timed(lambda: E.place(E.fit_map(feats[:200], labels[:200], decoded.classes), feats[0]))
    fits, stages = [], []
    for _ in range(args.repeats):
        m, s = timed(lambda: E.fit_map(feats, labels, decoded.classes, seed=0))
        fits.append(s)
        stages.append(m.reducer.timings)
    median_stages = {k: round(statistics.median(st[k] for st in stages), 3) for k in stages[0]}
    _, first_transform_s = timed(lambda: E.place(m, feats[0]))
    transforms = [timed(lambda i=i: E.place(m, feats[i]))[1] for i in range(1, 21)]

    out = dict(
        benchmark="umap_latency", n=int(len(feats)), dims=int(feats.shape[1]), classes=decoded.classes,
        model=model_name, input_size=int(size),
        decode_s=round(decode_s, 2), features_s=round(features_s, 2), features_were_cached=cached,
        jit_warmup_s=round(jit_s, 2),
        first_map_first_process_s=cold[0], first_map_new_process_s=cold[1],
        fit_s=[round(s, 3) for s in fits], fit_s_median=round(statistics.median(fits), 3),
        fit_stages_s_median=median_stages,
        transform_first_s=round(first_transform_s, 4),
        transform_s_median=round(statistics.median(transforms), 4),
        transform_s_max=round(max(transforms), 4),
        target_fit_s=5.0, target_transform_s=0.5,
        settings=dict(pipeline="L2-normalise -> PCA (randomized, seeded) -> UMAP on exact Euclidean distances "
                               "(metric='precomputed')", pca_dims=E.PCA_DIMS, **E.UMAP_DEFAULTS,
                      pca_power_iterations=2, seed=0, threads="numba single-threaded (seeded UMAP)"),
        cpu_count=os.cpu_count(), load_average_1min=round(os.getloadavg()[0], 2),
        torch_threads=torch.get_num_threads(), python=platform.python_version(),
    )
    out["cold_minus_warm_s"] = round(cold[1] - out["fit_s_median"], 2)
    out["meets_target"] = bool(out["fit_s_median"] <= 5.0 and out["transform_s_max"] <= 0.5
                               and out["cold_minus_warm_s"] <= 10.0)

    if args.baseline:
        import umap
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reducer = umap.UMAP(metric="cosine", random_state=0)
            out["baseline_umap_defaults_fit_s"] = round(timed(lambda: reducer.fit(feats))[1], 2)
            out["baseline_umap_defaults_transform_s"] = round(timed(lambda: reducer.transform(feats[:1]))[1], 3)
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
