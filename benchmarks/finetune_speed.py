"""How long a Retrain lesson waits: the default fine-tune (first and second time), today's old default,
and the from-scratch lesson preset, each split by phase, with held-out accuracy.

    python benchmarks/finetune_speed.py [--data DIR] [--skip-old] [--out benchmarks/results/finetune_speed.json]

Runs, one after another in this process on the same data (default: the flowers beside a clone, else
the shipped pack), each through `alexnet.train.train` exactly as the app's Start button calls it:

1. **default, first**: an empty cache (ALEXNET_CACHE points at a fresh folder): decode the folder,
   run the frozen shipped model once over every photo to fc7 (centre crop), train a new fc8 on those.
2. **default, second**: the same again: decode and features come from the cache.
3. **default + mirror**: the same with a mirrored view of every training photo (does it pay?).
4. **untrained trunk**: the default on an untrained paper network: what random features are worth.
5. **old default** (`--freeze conv5`: fc6-fc8 on cached pool5 features with mirrors, 10 epochs of
   batch 128): what the Retrain tab did before; the slow one (~16 min on 2 cores). `--skip-old` skips it.
6. **lesson** (`--mode scratch --recipe lesson`): the paper network from scratch at 99 px for 3
   epochs, the preset for watching a network learn.

Every run's phase split (decode, model, features, train, val, save) comes from the run's own
clock and adds up to its wall time. Prints and writes one JSON object with the load average.
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

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data" / "flower_photos_256"


def untrained_checkpoint(folder: Path, like: dict) -> Path:
    """An untrained paper network (seed 0) saved with the shipped model's statistics and input size."""
    from alexnet import weights as W
    from alexnet.model import build
    model = build("paper", len(like["classes"]), generator=torch.Generator().manual_seed(0))
    meta = W.make_meta(model, like["classes"], like["mean"], like["std"], source="untrained (seed 0)",
                       input_size=like["input_size"])
    return W.save_checkpoint(folder / "untrained.safetensors", model, meta)


def one_run(name: str, cfg) -> dict:
    from alexnet.train import train
    load = [round(v, 2) for v in os.getloadavg()]
    t0 = time.perf_counter()
    r = train(cfg)
    wall = time.perf_counter() - t0
    best = max((h["val_acc"] for h in r.history if h.get("val_acc") is not None), default=None)
    row = dict(name=name, wall_s=round(wall, 2), phase_seconds={k: round(v, 2) for k, v in r.phase_seconds.items()},
               phases_sum_s=round(sum(r.phase_seconds.values()), 2), best_val_acc=best,
               last_val_acc=r.history[-1]["val_acc"] if r.history else None, epochs=len(r.history),
               n_train=r.meta["split"]["n_train"], n_val=r.meta["split"]["n_val"],
               features_cached=r.meta.get("features_cached"), path=r.meta.get("path"),
               config=dict(mode=cfg.mode, freeze=cfg.freeze, recipe=cfg.recipe, mirror=cfg.mirror,
                           input_size=cfg.input_size, epochs=cfg.epochs),
               load_average_before=load)
    print(json.dumps(row), flush=True)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=str(SHARED) if SHARED.is_dir() else None,
                    help="image folder (default: the flowers beside a clone, else the shipped pack)")
    ap.add_argument("--skip-old", action="store_true", help="skip the old default (fc6-fc8 on pool5, ~16 min)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "finetune_speed.json"))
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="alexnet-ft-bench-") as tmp:
        os.environ["ALEXNET_CACHE"] = str(Path(tmp) / "cache")          # before alexnet reads it: an empty cache
        from alexnet import data as D
        from alexnet import weights as W
        from alexnet.compact import SHIPPED
        from alexnet.train import TrainConfig
        data = str(D.find_data_dir(args.data))
        shipped = W.read_meta(SHIPPED)

        def cfg(name, **kw):
            return TrainConfig(**{**dict(data=data, mode="finetune", weights=str(SHIPPED), device="cpu",
                                         out=str(Path(tmp) / name)), **kw})

        runs = [one_run("default, first (empty cache)", cfg("first")),
                one_run("default, second (decode and features cached)", cfg("second")),
                one_run("default + mirrored training views", cfg("mirror", mirror=True)),
                one_run("default on an untrained trunk", cfg("untrained", weights=str(untrained_checkpoint(Path(tmp), shipped))))]
        if not args.skip_old:
            runs.append(one_run("old default: fc6-fc8 on pool5 (+ mirror), 10 epochs", cfg("old", freeze="conv5")))
        runs.append(one_run("lesson: from scratch, 99 px, 3 epochs of batch 128", TrainConfig(
            data=data, mode="scratch", recipe="lesson", device="cpu", out=str(Path(tmp) / "lesson"))))
    result = dict(
        benchmark="finetune_speed", data=data, n_images=runs[0]["n_train"] + runs[0]["n_val"],
        machine=f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, "
                f"{'CUDA' if torch.cuda.is_available() else 'no GPU'}",
        python=platform.python_version(), load_average_after=[round(v, 2) for v in os.getloadavg()],
        targets=dict(first_s=60, second_s=10, lesson_s=180, accuracy_within_points_of_old=1.0),
        runs=runs)
    text = json.dumps(result, indent=2)
    print(text)
    Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
