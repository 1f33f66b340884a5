"""Each lever of the fast from-scratch recipe, one at a time, on this machine.

    python benchmarks/train_levers.py --speed                 # img/s levers only (a few minutes)
    python benchmarks/train_levers.py --accuracy              # + one short run per accuracy lever (~30 min on 2 cores)

Speed levers (one optimizer step of the full paper AlexNet on real flower batches, the median
of `--steps` after a warm-up): input size (progressive resizing's 131/163/195 px against 227),
batch size, channels_last, torch.compile. Accuracy levers: the `short` run of
benchmarks/results/train_scratch.json is the baseline (`--b-short-epochs` epochs of the fast
recipe); each lever run changes one setting and is compared at the same number of epochs
(or, for "no progressive resizing", at about the same wall time). BVLC's conv1 and 10-crop
come from their own runs (train_scratch.json's budget run, the shipped model's sidecar).

Writes benchmarks/results/train_levers.json and prints it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


import torch
import torch.nn.functional as F

from alexnet import data as D
from alexnet import weights as W
from alexnet.augment import random_resized_crop_flip
from alexnet.model import build
from alexnet.train import TrainConfig, train

RESULTS = Path(__file__).resolve().parent / "results"


def step_speed(images: torch.Tensor, size: int, batch: int, channels_last: bool, compile_: bool, steps: int) -> float:
    """Training img/s: crop + forward + backward + AdamW step on real uint8 images, median of `steps`."""
    gen = torch.Generator().manual_seed(0)
    model = build("paper", 5, generator=gen)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = torch.compile(model) if compile_ else model
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    times = []
    for i in range(steps + 2):                         # two warm-up steps (compile pays on the first)
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        t0 = time.perf_counter()
        x = random_resized_crop_flip(images[idx], size, gen).sub_(0.45).div_(0.27).contiguous(memory_format=fmt)
        loss = F.cross_entropy(net(x), torch.randint(0, 5, (batch,), generator=gen))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return round(batch / statistics.median(times), 2)


def speed_levers(images: torch.Tensor, steps: int) -> list[dict]:
    rows = []
    base = step_speed(images, 227, 32, False, False, steps)
    rows.append(dict(lever="baseline: 227 px, batch 32, contiguous, eager", img_per_s=base, gain=1.0))
    for size in (195, 163, 131):
        v = step_speed(images, size, 32, False, False, steps)
        rows.append(dict(lever=f"input {size} px (progressive resizing's early epochs)", img_per_s=v, gain=round(v / base, 2)))
    for batch in (64, 128):
        v = step_speed(images, 227, batch, False, False, max(3, steps // 2))
        rows.append(dict(lever=f"batch {batch}", img_per_s=v, gain=round(v / base, 2)))
    v = step_speed(images, 227, 32, True, False, steps)
    rows.append(dict(lever="channels_last", img_per_s=v, gain=round(v / base, 2)))
    try:
        v = step_speed(images, 227, 32, False, True, steps)
        rows.append(dict(lever="torch.compile (inductor, CPU)", img_per_s=v, gain=round(v / base, 2)))
    except Exception as e:                             # no C compiler, an inductor bug: say so, keep the rest
        rows.append(dict(lever="torch.compile (inductor, CPU)", img_per_s=None, gain=None, error=str(e)[:200]))
    for r in rows:
        print(f"{r['lever']}: {r['img_per_s']} img/s ({r['gain']}x)", flush=True)
    return rows


def run(cfg: TrainConfig) -> dict:
    t0 = time.perf_counter()
    r = train(cfg)
    h = r.history
    return dict(epochs=len(h), final_val_acc=h[-1]["val_acc"], best_val_acc=max(row["val_acc"] for row in h),
                wall_s=round(time.perf_counter() - t0, 1), load_average=round(os.getloadavg()[0], 2))


def accuracy_levers(root: Path, epochs: int, baseline: dict | None) -> list[dict]:
    work = Path(tempfile.mkdtemp(prefix="alexnet-levers-"))
    common = dict(data=str(root), mode="scratch", arch="paper", recipe="fast", seed=0, epochs=epochs)
    rows = []
    if baseline is not None:
        rows.append(dict(lever=f"baseline: fast recipe, {epochs} epochs (train_scratch.json short run)",
                         final_val_acc=baseline["final_val_acc"], wall_s=baseline["wall_s"]))
    variants = [
        ("no progressive resizing (227 px throughout, epochs for about the same wall time)",
         dict(progressive=False, epochs=max(1, round(epochs * 0.45)))),
        ("constant lr, no label smoothing (instead of one-cycle + 0.1)", dict(schedule="constant", label_smoothing=0.0,
                                                                            lr=2e-4)),
        ("batch 64 (instead of 32)", dict(batch_size=64)),
    ]
    for name, change in variants:
        cfg = TrainConfig(**{**common, **change, "out": str(work / str(len(rows)))})
        r = run(cfg)
        rows.append(dict(lever=name, **r))
        print(f"{name}: val {r['final_val_acc']:.3f} in {r['wall_s']:.0f} s", flush=True)
    return rows


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None)
    p.add_argument("--speed", action="store_true", help="the img/s levers")
    p.add_argument("--accuracy", action="store_true", help="one short training run per accuracy lever")
    p.add_argument("--steps", type=int, default=6, help="timed steps per speed lever")
    p.add_argument("--epochs", type=int, default=None, help="accuracy runs (default: train_scratch.json's short run)")
    p.add_argument("--out", default=str(RESULTS / "train_levers.json"))
    args = p.parse_args(argv)
    if not (args.speed or args.accuracy):
        p.error("choose --speed and/or --accuracy")
    torch.manual_seed(0)
    root = D.find_data_dir(args.data)
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.update(benchmark="train_levers", cpu_count=os.cpu_count(), threads=torch.get_num_threads(),
                  torch=torch.__version__, data=str(root))
    if args.speed:
        decoded = D.decode_folder(root)
        result["speed_load_average"] = round(os.getloadavg()[0], 2)
        result["speed"] = speed_levers(decoded.images, args.steps)
    if args.accuracy:
        scratch = RESULTS / "train_scratch.json"
        bench = json.loads(scratch.read_text()) if scratch.exists() else {}
        base = bench.get("b", {}).get("short")
        epochs = args.epochs or (base["epochs"] if base else 8)
        # Reuse that run as the baseline only if it trained what these runs train: all images, fully from scratch.
        same = (base is not None and base["epochs"] == epochs and bench.get("images") == len(D.list_images(root)[0])
                and bench.get("recipe", {}).get("init_conv1") == "none" and Path(bench.get("data", "")) == root)
        result["accuracy"] = accuracy_levers(root, epochs, base if same else None)
    W.atomic_write_text(out, json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
