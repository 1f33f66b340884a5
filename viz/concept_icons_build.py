"""Rebuild assets/flowers_conv5_icons.safetensors (`python -m viz.concept_icons_build`; format: viz.concept_icons).

The shipped flowers model's 256 conv5 channels, one feature-visualisation icon each, optimised as one
batch and saved beside the model with a JSON sidecar (model sha256, size, steps, seed, time, command),
so the concept views open with icons on a fresh install without minutes of optimisation.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.files import atomic_write_text, sha256_file
from viz.concept_icons import SEED, SHIPPED_ICONS, SIZE, STEPS, make_icons, save_icons

COMMAND = "python -m viz.concept_icons_build"


def build_shipped(out: Path = SHIPPED_ICONS, steps: int = STEPS, size: int = SIZE, seed: int = SEED,
                  log=print) -> dict:
    """Make the shipped model's icons and write `out` and its `.json` sidecar; returns the sidecar."""
    model, meta = W.load(str(SHIPPED))
    loadavg = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    t0 = time.perf_counter()
    icons, info = make_icons(model.eval(), steps, size, torch.Generator().manual_seed(seed),
                             progress=lambda s, n: log(f"step {s}/{n}, {time.perf_counter() - t0:.0f} s"),
                             mean=meta["mean"], std=meta["std"])
    info.update(model=SHIPPED.name, model_sha256=sha256_file(SHIPPED), seed=seed, mean=meta["mean"],
                std=meta["std"], torch_threads=torch.get_num_threads(), loadavg_before=loadavg,
                rebuild_command=COMMAND)
    save_icons(out, icons, info)
    side = {k: v for k, v in info.items() if k not in ("start", "final")}
    side.update(count=len(icons), file_bytes=out.stat().st_size,
                objective_mean_start=sum(info["start"]) / len(icons), objective_mean_final=sum(info["final"]) / len(icons),
                channels_raised=sum(f > s for s, f in zip(info["start"], info["final"])))
    atomic_write_text(out.with_suffix(".json"), json.dumps(side, indent=1) + "\n")
    return side


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog=COMMAND, description="Rebuild assets/flowers_conv5_icons.safetensors: one "
                                 "feature-visualisation icon per conv5 channel of the shipped flowers model.")
    ap.add_argument("--out", type=Path, default=SHIPPED_ICONS, help="(default: the shipped one)")
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--size", type=int, default=SIZE)
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args(argv)
    side = build_shipped(args.out, args.steps, args.size, args.seed)
    print(f"{args.out}: {side['count']} icons of {side['size']} px, {side['file_bytes'] / 1e6:.2f} MB, "
          f"{side['seconds']} s, load average before {' '.join(side['loadavg_before'])}")


if __name__ == "__main__":
    main()
