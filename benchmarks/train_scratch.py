"""From scratch on this machine: val accuracy against wall-clock seconds, the seed-002 recipe vs this engine.

    python benchmarks/train_scratch.py                         # the full comparison (about an hour on 2 cores)
    python benchmarks/train_scratch.py --limit 300 --a-epochs 1 --b-epochs 2 --b-short-epochs 1   # a smoke run

(a) seed-002, exactly: half-width paper AlexNet, ImageFolder + PIL RandomResizedCrop(224) + flip
    in a DataLoader, batch 32, Adam 2e-4, `--a-epochs` (10) epochs.
(b) this engine's fastest from-scratch recipe (`--recipe fast`) for the full paper two-tower
    AlexNet, validated at 227 (centre crop) after every epoch, in two runs of the same recipe:
    `short`, the longest one-cycle schedule that alexnet.estimate (real steps, timed first)
    says fits in a third of (a)'s wall time, and `budget` (`--b-epochs`), the fixed budget
    that should stay under 20 minutes. (a) runs first, so the short run can be sized from it.
Both see the same stratified split (seed 0, 20% val). Every curve point is taken after that
epoch's validation, so evaluation time is inside the wall clock, as is (b)'s one-off decode.

Writes benchmarks/results/train_scratch.json (+ .png beside it) and prints the JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path


import torch

from alexnet import data as D
from alexnet import evaluate as E
from alexnet import weights as W
from alexnet.estimate import estimate
from alexnet.train import RECIPES, TrainConfig, epoch_sizes, resolve, train
from train_throughput import seed002

RESULTS = Path(__file__).resolve().parent / "results"


def load() -> float:
    return round(os.getloadavg()[0], 2)


def engine_curve(cfg: TrainConfig, decoded: D.Decoded) -> dict:
    """Train `cfg`, timing each epoch's end (after validation) from the call; then 10-crop the last model."""
    points: list[dict] = []
    t0 = time.perf_counter()
    load_before = load()

    def progress(s):
        # In phase 'val' the engine reports twice per epoch: before validating (val_acc still the
        # previous epoch's) and after; keyed by epoch, the second report overwrites the first.
        if s.phase == "val" and s.val_acc is not None:
            if points and points[-1]["epoch"] == s.epoch:
                points.pop()
            points.append(dict(epoch=s.epoch, val_acc=round(s.val_acc, 4), wall_s=round(time.perf_counter() - t0, 2),
                               size=s.size))

    r = train(cfg, progress=progress)
    for p in points:
        print(f"(b) epoch {p['epoch']} at {p['size']} px: val {p['val_acc']:.3f} at {p['wall_s']:.0f} s", flush=True)
    wall = time.perf_counter() - t0
    model, meta = W.load_checkpoint(r.checkpoint)
    idx = E.split_indices(meta, decoded, "val")
    centre = E.evaluate(model, meta, decoded.images[idx], decoded.labels[idx])
    ten = E.evaluate(model, meta, decoded.images[idx], decoded.labels[idx], ten_crop=True)
    h = r.history
    return dict(curve=points, wall_s=round(wall, 2), final_val_acc=h[-1]["val_acc"],
                best_val_acc=max(p["val_acc"] for p in points), final_ten_crop_acc=round(ten["top1"], 4),
                final_centre_acc=round(centre["top1"], 4), per_class=ten["per_class"],
                img_per_s=[round(row["img_per_s"], 1) for row in h], sizes=[row.get("size") for row in h],
                checkpoint=str(r.checkpoint), load_average_before=load_before, load_average_after=load())


def first_time_at(curve: list[dict], acc: float) -> float | None:
    return next((p["wall_s"] for p in curve if p["val_acc"] >= acc), None)


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if "a" in result:
        c = result["a"]["curve"]
        ax.plot([p["wall_s"] / 60 for p in c], [p["val_acc"] for p in c], "o-", color="#888",
                label="(a) seed-002: half-width, PIL + DataLoader, Adam")
        ax.axhline(result["a_final_val_acc"], color="#888", lw=0.8, ls=":")
    colours = {"short": "#d95f02", "budget": "#1b9e77"}
    for name, run in result["b"].items():
        c = run["curve"]
        ax.plot([p["wall_s"] / 60 for p in c], [p["val_acc"] for p in c], "o-", color=colours.get(name),
                label=f"(b) {name}: paper AlexNet, {len(c)} epochs, fast recipe")
    ax.axvline(20, color="#c00", lw=0.8, ls="--")
    ax.set_xlabel("wall-clock minutes (evaluation included)")
    ax.set_ylabel("val top-1 (centre crop)")
    ax.set_title(f"From scratch on {result['cpu_count']} CPU cores, {result['val_images']} held-out flowers")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="image folder (default: $ALEXNET_DATA or ../shared/data/flower_photos_256)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images (stratified)")
    p.add_argument("--a-epochs", type=int, default=10)
    p.add_argument("--b-epochs", type=int, default=16, help="(b) budget run")
    p.add_argument("--b-short-epochs", type=int, default=None,
                   help="(b) short run (0: skip it; default: the longest schedule estimated to fit in a third of (a)'s time)")
    p.add_argument("--init-conv1", default="none", choices=("none", "bvlc"),
                   help="bvlc: (b) starts conv1 from BVLC ImageNet (then not fully from scratch)")
    p.add_argument("--skip-a", action="store_true", help="only (b), e.g. on a GPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS / "train_scratch.json"))
    args = p.parse_args(argv)
    torch.manual_seed(args.seed)

    root = D.find_data_dir(args.data)
    decoded = D.decode_folder(root)
    keep = D.stratified_subset(decoded.labels, args.limit, args.seed)
    tr, va = D.stratified_split(decoded.labels[keep], 0.2, args.seed)
    work = Path(tempfile.mkdtemp(prefix="alexnet-scratch-"))
    result = dict(benchmark="train_scratch", cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                  torch=torch.__version__, platform=platform.platform(), device=args.device, data=str(root),
                  images=len(keep), train_images=len(tr), val_images=len(va), load_average=load(),
                  started=time.strftime("%Y-%m-%d %H:%M:%S"))

    def cfg(epochs: int, name: str) -> TrainConfig:
        return TrainConfig(data=str(root), mode="scratch", arch="paper", recipe="fast", epochs=epochs,
                           limit=args.limit, seed=args.seed, device=args.device, init_conv1=args.init_conv1,
                           out=str(work / name))

    if not args.skip_a:
        if decoded.paths != [str(q) for q in D.list_images(root)[0]]:
            raise SystemExit("(a) needs a folder where every file decodes, so both paths see the same split")
        t0 = time.perf_counter()
        a = seed002(root, keep[tr], keep[va], args.a_epochs, None, 0.5, args.seed, eval_every_epoch=True)
        a_wall = time.perf_counter() - t0
        result["a"] = dict(epochs=args.a_epochs, curve=a["curve"], img_per_s=round(a["img_per_s"], 2),
                           recipe="half-width paper AlexNet, ImageFolder + PIL RandomResizedCrop(224) + flip, "
                                  "DataLoader(batch 32, 2 workers), Adam 2e-4, val Resize(256)+CenterCrop(224)")
        result["a_final_val_acc"] = a["curve"][-1]["val_acc"]
        result["a_wall_s"] = round(a_wall, 2)

    # The short run: the longest fast schedule whose measured estimate fits in a third of (a)'s time
    # (x1.1 for augmentation and start-up, which the estimate's synthetic steps leave out).
    short = args.b_short_epochs
    if short is None:
        target = result.get("a_wall_s", 1800) / 3
        fits = [e for e in range(3, args.b_epochs + 1)
                if 1.1 * estimate(cfg(e, "estimate"), len(keep), len(decoded.classes)).seconds <= target]
        short = max(fits) if fits else 3
        result["b_short_chosen"] = dict(epochs=short, target_s=round(target, 1), rule="longest schedule whose "
                                        "estimate x1.1 fits in a_wall_s / 3")
    result["b"] = {}
    for name, epochs in (("short", short), ("budget", args.b_epochs)):
        if epochs > 0:
            c = resolve(cfg(epochs, name))
            result["b"][name] = dict(epochs=epochs, sizes_planned=epoch_sizes(c, 227), **engine_curve(c, decoded))
    c = resolve(cfg(args.b_epochs, "recipe"))
    result["recipe"] = dict(
        name="fast", arch="paper (two towers, LRN, groups=2)", eval_size=227, batch_size=c.batch_size,
        **{k: v for k, v in RECIPES["fast"].items() if k not in ("batch_size", "epochs")},
        init_conv1=args.init_conv1, fully_from_scratch=args.init_conv1 == "none",
        command=f"python -m alexnet.train --mode scratch --epochs {args.b_epochs}"
                + (f" --init-conv1 {args.init_conv1}" if args.init_conv1 != "none" else ""))

    if "a" in result:
        times = [first_time_at(run["curve"], result["a_final_val_acc"]) for run in result["b"].values()]
        times = [t for t in times if t is not None]
        result["b_time_to_a_s"] = min(times) if times else None
        result["ratio"] = round(result["a_wall_s"] / result["b_time_to_a_s"], 2) if times else None
    budget = result["b"]["budget"]
    result["b_best_val_acc"] = budget["best_val_acc"]
    result["b_wall_s"] = budget["wall_s"]
    result["b_ten_crop_acc"] = budget["final_ten_crop_acc"]
    result["b_time_to_075_s"] = first_time_at(budget["curve"], 0.75)
    result["targets"] = dict(ratio_ge_3=(result.get("ratio") or 0) >= 3,
                             b_075_within_1200_s=result["b_time_to_075_s"] is not None and result["b_time_to_075_s"] <= 1200)
    result["load_average_end"] = load()

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    W.atomic_write_text(out, json.dumps(result, indent=1))
    plot(result, out.with_suffix(".png"))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
