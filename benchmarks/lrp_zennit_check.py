"""Is the app's LRP map Zennit's? An independent check on the five held-out example photos. Prints and writes JSON.

    python benchmarks/lrp_zennit_check.py [--out benchmarks/results/lrp_zennit_check.json]

The shipped flowers model is loaded through alexnet/ only, and Zennit runs here directly with the
composite viz/lrp.py states, built from Zennit's classes in this file:

    fc (Linear): Epsilon(1e-6)      conv2-conv5: AlphaBeta(2, 1)      conv1: ZBox on the pixel box 0..1
    ReLU: Pass   LocalResponseNorm: Pass   AdaptiveAvgPool: Norm   MaxPool, Dropout: gradient
    every rule with zero_params=["bias"]; output relevance = the target logit on its own output

The map is the relevance summed over colour channels, then ReLU. Only after every direct map is made is
viz imported, for `viz.attribution.explain(model, photo, method="lrp", meta=meta)`, what the app's
/explain computes (the checkpoint meta gives the preprocessing and, through the method's record, the box).
Per photo: the largest absolute and relative (to the map's maximum) difference between the two, the
conservation sum(input relevance) / target logit, and how far ImageNet's box (what the comparison grid
and the checks use, which pass no normalisation) moves the map from the exact one.
"""
from __future__ import annotations

import argparse
import json
import platform
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import AlphaBeta, Epsilon, Norm, Pass, ZBox
from zennit.types import Activation, AvgPool, Convolution

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.images import preprocess

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
OUT = ROOT / "benchmarks" / "results" / "lrp_zennit_check.json"
SAME = 1e-5               # relative to the map's maximum: "the same numbers"


def stated_composite(mean, std) -> SpecialFirstLayerMapComposite:
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    zero = ["bias"]
    return SpecialFirstLayerMapComposite(
        layer_map=[(Activation, Pass()), (nn.LocalResponseNorm, Pass()), (AvgPool, Norm()),
                   (Convolution, AlphaBeta(alpha=2, beta=1, zero_params=zero)),
                   (nn.Linear, Epsilon(epsilon=1e-6, zero_params=zero))],
        first_map=[(Convolution, ZBox(low=(0 - m) / s, high=(1 - m) / s, zero_params=zero))])


def zennit_map(model, x, target, mean, std) -> tuple[np.ndarray, float, float]:
    """(map (H, W) >= 0, sum of input relevance, seconds)."""
    t0 = time.perf_counter()
    with Gradient(model=model, composite=stated_composite(mean, std)) as attributor:
        _, rel = attributor(x.clone(), lambda out: torch.eye(out.shape[1])[[target]] * out.detach())
    return rel[0].sum(0).clamp(min=0).numpy(), float(rel.sum()), time.perf_counter() - t0


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    torch.set_grad_enabled(True)
    model, meta = W.load(str(SHIPPED))
    model.eval()
    photos = json.loads((EXAMPLES / "examples.json").read_text())["photos"]
    rows = []
    for p in photos:
        img = Image.open(EXAMPLES / p["file"]).convert("RGB")
        x = preprocess(img, meta["input_size"], meta["mean"], meta["std"])               # (1, 3, 227, 227)
        with torch.no_grad():
            logits = model(x)[0]
        t = int(logits.argmax())
        exact, exact_sum, secs = zennit_map(model, x, t, meta["mean"], meta["std"])
        loose, loose_sum, _ = zennit_map(model, x, t, W.IMAGENET_MEAN, W.IMAGENET_STD)
        rows.append(dict(photo=p["file"], label=p["class"], predicted=meta["classes"][t], target=t,
                         logit=float(logits[t]), img=img, exact=exact, loose=loose, seconds=secs,
                         conservation_exact_box=exact_sum / float(logits[t]),
                         conservation_imagenet_box=loose_sum / float(logits[t])))

    from viz.attribution import explain   # only now: every reference above was made without viz

    out = []
    for r in rows:
        e = explain(model, r.pop("img"), r["target"], method="lrp", meta=meta)
        want, loose = r.pop("exact"), r.pop("loose")
        diff = np.abs(e.heatmap - want)
        r.update(max_abs_diff=float(diff.max()), max_rel_diff=float(diff.max() / want.max()),
                 same=bool(diff.max() <= SAME * want.max()), app_seconds=e.seconds,
                 imagenet_box_vs_exact_max_rel_diff=float(np.abs(loose - want).max() / want.max()),
                 imagenet_box_vs_exact_pearson=pearson(loose, want))
        out.append(r)
    result = {
        "what": "viz.attribution.explain(method='lrp') against Zennit run directly with viz/lrp.py's stated composite",
        "model": SHIPPED.name, "torch": torch.__version__, "zennit": version("zennit"),
        "machine": platform.machine(), "threads": torch.get_num_threads(),
        "same_threshold_rel": SAME, "all_same": all(r["same"] for r in out),
        "worst_max_rel_diff": max(r["max_rel_diff"] for r in out),
        "worst_conservation_error": max(abs(r[k] - 1) for r in out for k in ("conservation_exact_box", "conservation_imagenet_box")),
        "photos": out,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
