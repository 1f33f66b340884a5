"""How long does each explanation take for one image? Prints one JSON object.

    python benchmarks/explain_latency.py [--methods saliency,gradcam] [--n 20] [--data DIR|synthetic] [--device auto]

Per method: ms per image (p50 / p95 / mean) over --n different images, each call being
`viz.attribution.explain` with the target given (the UI has it from the panel). The explain
panel (`viz.attribution.panel`: top-5, every layer's activation, saliency, Grad-CAM) is timed
as one call, alone and with its two overlays drawn. References: one inference forward and
one forward+backward to the input, both at batch 1. Targets checked: panel p50 <= 150 ms on
CPU, and IG with 32 steps <= 32 forward+backward passes.

Issue 24's other views, per image (`--views`): `concepts` (conv5's channel shares for the class: one
forward + backward; the strip's dataset patches come from one pass over the data, once per model, kept in
the feature store: that pass costs `forward` x the set's size), `dictionary` (the semantic dictionary drawn
with 256 icons), `fgsm` (epsilon 2/255, untargeted, with both top-5s and both Grad-CAMs), `pgd` (epsilon
8/255, 10 steps, the same extras) and `two_models` (Grad-CAM and the conv1 view of two models, the Two-models
tab's model work bar the fc7 maps, which are lookups once drawn).

The model is the paper AlexNet with UNTRAINED weights: the timings are real, the maps are noise.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch


from alexnet import device as dev  # noqa: E402
from alexnet.images import preprocess  # noqa: E402
from alexnet.model import build  # noqa: E402
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402
from viz import adversarial, concepts  # noqa: E402
from viz.attribution import METHODS, explain, overlay_image, panel, panels  # noqa: E402
from viz.filters import filter_view  # noqa: E402

VIEWS = ("concepts", "dictionary", "fgsm", "pgd", "two_models")

FLOWERS = Path(os.environ.get("ALEXNET_SHARED", Path(__file__).resolve().parent.parent.parent / "shared")) / "data" / "flower_photos_256"
PANEL_TARGET_MS = 150.0
BATCH = 8                # images per batched panel, as app.passes batches them


def load_images(data: str | None, n: int, size: int) -> tuple[list[torch.Tensor], str]:
    """n different (1, 3, S, S) normalised images: real photos spread over every class folder, else synthetic."""
    root = Path(data) if data and data != "synthetic" else FLOWERS
    if data != "synthetic" and root.is_dir():
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
        if len(files) >= n:
            picks = [files[i] for i in np.linspace(0, len(files) - 1, n).round().astype(int)]
            return [preprocess(p, size, IMAGENET_MEAN, IMAGENET_STD) for p in picks], str(root)
        if data:
            raise SystemExit(f"--data {root}: {len(files)} images, fewer than --n {n}")
    elif data and data != "synthetic":
        raise SystemExit(f"--data {root}: no such folder")
    g = torch.Generator().manual_seed(0)
    # Smooth random blobs (noise upsampled from 8x8) look more like photos to a conv net than white noise.
    small = torch.randn(n, 3, 8, 8, generator=g)                                               # (n, 3, 8, 8)
    imgs = torch.nn.functional.interpolate(small, size=(size, size), mode="bicubic")           # (n, 3, S, S)
    imgs = imgs + 0.3 * torch.randn(n, 3, size, size, generator=g)
    return [im.unsqueeze(0) for im in imgs], "synthetic"                                      # n x (1, 3, S, S)


def timed(fns: dict, xs, device: torch.device, warmup: int = 2) -> dict:
    """name -> p50 / p95 / mean ms of fn(x) over xs, after `warmup` untimed calls of each.

    Round-robin (every function on image 1, then on image 2, ...) so that a burst of load from
    other processes lands on all of them alike and the ratios stay fair.
    """
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    for fn in fns.values():
        for _ in range(warmup):
            fn(xs[0])
    sync()
    ms = {name: [] for name in fns}
    for x in xs:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(x)
            sync()
            ms[name].append((time.perf_counter() - t0) * 1e3)
    out = {}
    for name, v in ms.items():
        q = statistics.quantiles(v, n=20, method="inclusive")  # 5 % steps: q[9] = p50, q[18] = p95
        out[name] = {"p50_ms": round(q[9], 2), "p95_ms": round(q[18], 2), "mean_ms": round(statistics.fmean(v), 2)}
    return out


def issue24_views(views: list[str], model, targets: dict, device) -> dict:
    """name -> fn(x) for each of issue 24's views asked for (see the module docstring)."""
    unknown = [v for v in views if v not in VIEWS]
    if unknown:
        raise SystemExit(f"unknown view(s) {unknown}; choose from {', '.join(VIEWS)}")
    g = torch.Generator().manual_seed(0)
    icons = torch.randint(0, 256, (256, 3, 64, 64), dtype=torch.uint8, generator=g)      # conv5's 256 channels
    other = dev.prepare(build("paper", 1000, generator=g), device).eval()               # the second model
    mean, std = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)

    def pixels(x):                                                                      # normalised -> [0, 1]
        return (x.cpu() * std + mean).clamp(0, 1)

    def dictionary(x):
        with torch.inference_mode():
            _, acts = model(x, return_activations=True)
        concepts.dictionary_picture(*concepts.semantic_dictionary(acts["conv5"]), icons)

    def two_models(x):
        for net in (model, other):
            explain(net, x, targets[id(x)], "gradcam")
            filter_view(net)

    fns = {"concepts": lambda x: concepts.channel_shares(model, x, targets[id(x)]),
           "dictionary": dictionary,
           "fgsm": lambda x: adversarial.attack(model, pixels(x), IMAGENET_MEAN, IMAGENET_STD, 2, "fgsm"),
           "pgd": lambda x: adversarial.attack(model, pixels(x), IMAGENET_MEAN, IMAGENET_STD, 8, "pgd", steps=10),
           "two_models": two_models}
    return {v: fns[v] for v in views}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=",".join(METHODS), help=f"comma list from {', '.join(METHODS)}")
    ap.add_argument("--n", type=int, default=20, help="different images per measurement (>= 20 for a p95)")
    ap.add_argument("--data", default=None, help=f"image folder (default {FLOWERS} when present) or 'synthetic'")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--views", default=",".join(VIEWS), help=f"comma list from {', '.join(VIEWS)} ('' for none)")
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = ap.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        ap.error(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    warnings.filterwarnings("ignore", category=UserWarning)  # Captum's per-call requires_grad notes

    load_before = [round(v, 2) for v in os.getloadavg()]   # 1, 5, 15 min: what else was running
    if args.threads:
        torch.set_num_threads(args.threads)
    device = dev.pick(args.device)
    model = dev.prepare(build("paper", 1000), device).eval()
    size = model.spec.input_size
    xs, source = load_images(args.data, args.n, size)
    xs = [dev.to_input(x, device) for x in xs]
    with torch.inference_mode():
        targets = {id(x): int(model(x).argmax()) for x in xs}

    def forward(x):
        with torch.inference_mode():
            model(x)

    def forward_backward(x):  # what Saliency costs: one forward, one backward to the input only
        xr = x.detach().clone().requires_grad_(True)
        torch.autograd.grad(model(xr)[0, targets[id(x)]], xr)

    def panel_and_overlays(x):
        p = panel(model, x)
        overlay_image(x, p.saliency), overlay_image(x, p.gradcam)

    batch = torch.cat(xs[:BATCH])                     # BATCH x (1, 3, S, S) -> (BATCH, 3, S, S)
    fns = {"forward": forward, "forward_backward": forward_backward,
           "panel": lambda x: panel(model, x), "panel_with_overlays": panel_and_overlays,
           # the app's cheap lane batches visitors' requests (app.lanes): the same panel for BATCH images at once
           "panel_batch": lambda x: panels(model, batch)}
    for m in methods:
        opts = {"steps": args.ig_steps} if m == "integrated_gradients" else {}
        fns[m] = lambda x, m=m, opts=opts: explain(model, x, targets[id(x)], m, **opts)
    views = [v.strip() for v in args.views.split(",") if v.strip()]
    fns.update(issue24_views(views, model, targets, device))
    t = timed(fns, xs, device)
    out = {
        "model": "paper AlexNet, 1000 classes, UNTRAINED weights (timing only; the maps are noise)",
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "torch": torch.__version__, "threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "input_size": size, "n_images": len(xs), "data": source,
        "forward_ms": t["forward"], "forward_backward_ms": t["forward_backward"],
        "methods": {m: t[m] for m in methods},
        "views": {v: t[v] for v in views},
        "panel_ms": t["panel"], "panel_with_overlays_ms": t["panel_with_overlays"],
        f"panel_batch{BATCH}_per_image_ms": {k: round(v / BATCH, 2) for k, v in t["panel_batch"].items()},
        "load_average_before": load_before,
    }
    if "integrated_gradients" in out["methods"]:
        out["methods"]["integrated_gradients"]["steps"] = args.ig_steps
    fb = out["forward_backward_ms"]["p50_ms"]
    checks = {f"panel_p50_le_{PANEL_TARGET_MS:g}_ms": out["panel_ms"]["p50_ms"] <= PANEL_TARGET_MS}
    if "integrated_gradients" in out["methods"]:
        budget = args.ig_steps * fb
        checks[f"ig{args.ig_steps}_p50_le_{args.ig_steps}_forward_backward"] = out["methods"]["integrated_gradients"]["p50_ms"] <= budget
        checks["ig_budget_ms"] = round(budget, 2)
    out["targets"] = checks
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
