"""Build the compact flowers model shipped in assets/ (`python -m alexnet.compact`, the format is alexnet.compact).

    python -m alexnet.compact --weights RUN-last.safetensors --out assets/flowers_alexnet
    python -m alexnet.compact --train --out assets/flowers_alexnet      # train + compress + evaluate, one command

The rank is the smallest whose validation top-1 stays within `--tolerance` (0.5 points) of the
dense model, among ranks that fit the size budget; the whole rank/accuracy curve goes into the
sidecar with the metrics, the held-out files and the data's credit.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch

from alexnet import data as D
from alexnet import weights as W
from alexnet.compact import BUDGET_BYTES, SHIPPED, Factored, compact_bytes, save_compact
from alexnet.evaluate import evaluate, split_indices
from alexnet.train import TrainConfig, get_args_parser, train

DEFAULT_RANKS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160)
DATA_CREDIT = ("Trained on the TensorFlow flower photos (daisy, dandelion, roses, sunflowers, tulips), "
               "licensed CC-BY 2.0 by their Flickr photographers; the per-photo credits are in LICENSE.txt "
               "of the dataset (https://creativecommons.org/licenses/by/2.0/).")


def train_command(config: dict) -> str:
    """The `python -m alexnet.train` line that reproduces a run: every setting that differs from the defaults."""
    defaults = {f.name: f.default for f in fields(TrainConfig) if not callable(f.default)}
    flags = {a.dest: a.option_strings[0] for a in get_args_parser()._actions if a.option_strings}
    parts = ["python -m alexnet.train"]
    for k, v in config.items():
        if k in ("data", "out", "device", "extra") or k not in flags or v is None:
            continue
        d = defaults.get(k)
        if isinstance(d, tuple):
            d = list(d)
        if v == d and k not in ("mode", "epochs", "seed"):
            continue
        if isinstance(v, bool):
            parts.append(flags[k] if v else flags[k].replace("--", "--no-", 1))
        elif isinstance(v, list):
            parts.append(f"{flags[k]} {','.join(str(x) for x in v)}")
        else:
            parts.append(f"{flags[k]} {v}")
    return " ".join(parts)


def held_out_files(meta: dict, decoded: D.Decoded, root: Path) -> tuple[torch.Tensor, list[str]]:
    """The validation indices the run held out, and those files relative to the data folder."""
    idx = split_indices(meta, decoded, "val")
    return idx, [Path(decoded.paths[i]).relative_to(root).as_posix() for i in idx.tolist()]


def build_compact(weights, out, data=None, ranks=DEFAULT_RANKS, tolerance=0.005, budget=BUDGET_BYTES,
                  progress=lambda msg: print(msg, flush=True), extra: dict | None = None) -> dict:
    """Evaluate the dense checkpoint, pick the rank, write the compact file; returns its sidecar
    (`extra` is merged into it: how it was rebuilt, on which machine, in how long)."""
    model, meta = W.load_checkpoint(weights)
    root = D.find_data_dir(data or meta.get("data"))
    decoded = D.decode_folder(root)
    idx, files = held_out_files(meta, decoded, root)
    images, labels = decoded.images[idx], decoded.labels[idx]
    dense = evaluate(model, meta, images, labels)
    progress(f"dense: val top-1 {dense['top1']:.4f} on {len(idx)} held-out images")
    sidecar_allowance = 200_000                  # the JSON lists ~730 file names and the curves
    factored = Factored(model)
    curve = []
    for r in sorted(ranks):
        size = compact_bytes(model, r)
        if size + sidecar_allowance > budget:
            progress(f"rank {r}: {size / 1e6:.1f} MB, over the {budget / 1e6:.0f} MB budget; stopping")
            break
        acc = evaluate(factored.at_rank(r), meta, images, labels)["top1"]
        curve.append(dict(rank=r, val_top1=round(acc, 4), bytes=size))
        progress(f"rank {r}: val top-1 {acc:.4f}, {size / 1e6:.1f} MB")
    ok = [c for c in curve if c["val_top1"] >= dense["top1"] - tolerance]
    if not ok:
        raise ValueError(f"no rank within {tolerance * 100:.1f} points of the dense model fits {budget / 1e6:.0f} MB; "
                         f"curve: {curve}")
    rank = ok[0]["rank"]
    final = factored.at_rank(rank)
    centre = evaluate(final, meta, images, labels)
    ten = evaluate(final, meta, images, labels, ten_crop=True)
    config = meta.get("config", {})
    sidecar = dict(
        meta,
        metrics=dict(val_top1=round(centre["top1"], 4), val_top1_ten_crop=round(ten["top1"], 4),
                     val_top5=round(centre["top5"], 4), per_class=centre["per_class"],
                     per_class_ten_crop=ten["per_class"], confusion=centre["confusion"],
                     dense_val_top1=round(dense["top1"], 4), n_val=len(idx), epoch=meta.get("metrics", {}).get("epoch")),
        svd=dict(rank=rank, tolerance=tolerance, curve=curve, dense_val_top1=round(dense["top1"], 4)),
        training_command=train_command(config) if config else None,
        seed=meta.get("split_seed"),
        held_out_files=files,
        data_credit=DATA_CREDIT,
        data_folder=root.name,
        trained_from=str(Path(weights).name),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **(extra or {}),
    )
    sidecar["split"] = {k: v for k, v in (meta.get("split") or {}).items() if k != "val"}
    sidecar.pop("history", None)
    sidecar["history"] = [{k: row.get(k) for k in ("epoch", "size", "val_acc", "train_loss", "seconds")}
                          for row in meta.get("history", [])]
    # Checked before writing: the sidecar is stored twice (safetensors header and .json), plus the index.
    expected = compact_bytes(model, rank) + 2 * len(json.dumps(sidecar, indent=1)) + 20_000
    if expected > budget:
        raise ValueError(f"the compact file and its sidecar would take {expected / 1e6:.2f} MB, over the "
                         f"{budget / 1e6:.0f} MB budget; nothing was written")
    path = save_compact(out, factored, sidecar, rank)
    total = path.stat().st_size + path.with_suffix(".json").stat().st_size
    progress(f"wrote {path} (+ .json): {total / 1e6:.2f} MB, rank {rank}, val top-1 {centre['top1']:.4f} centre / "
             f"{ten['top1']:.4f} 10-crop")
    return sidecar


def machine() -> str:
    return f"{os.cpu_count()} CPU cores ({platform.machine()}), torch {torch.__version__}, " + \
        (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m alexnet.compact", description=__doc__.split("\n\n")[0],
                                epilog="--train runs `python -m alexnet.train --mode scratch` (the fast recipe, "
                                       "seed 0) first, so one command rebuilds the shipped file from the data.")
    p.add_argument("--weights", default=None, help="a dense .safetensors checkpoint written by alexnet.train")
    p.add_argument("--train", action="store_true", help="train the checkpoint first (from scratch, the fast recipe)")
    p.add_argument("--epochs", type=int, default=None, help="with --train (default: the recipe's)")
    p.add_argument("--init-conv1", default="none", choices=("none", "bvlc"), help="with --train")
    p.add_argument("--seed", type=int, default=0, help="with --train")
    p.add_argument("--data", default=None, help="image folder (default: the one the checkpoint was trained on)")
    p.add_argument("--out", default=str(SHIPPED.with_suffix("")), help="output stem (default: %(default)s)")
    p.add_argument("--ranks", default=",".join(map(str, DEFAULT_RANKS)), help="SVD ranks to try, ascending")
    p.add_argument("--tolerance", type=float, default=0.005, help="largest top-1 loss allowed (0.005 = 0.5 points)")
    args = p.parse_args(argv)
    if not args.weights and not args.train:
        p.error("give --weights CKPT, or --train to train one first")
    try:
        ranks = tuple(int(r) for r in args.ranks.split(","))
    except ValueError:
        p.error(f"--ranks must be integers separated by commas, not {args.ranks!r}")
    weights = args.weights
    extra = dict(machine=machine())
    try:
        if args.train:
            t0 = time.perf_counter()
            stem = W.cache_dir() / "checkpoints" / f"compact-train-{time.strftime('%Y%m%d-%H%M%S')}"
            r = train(TrainConfig(data=args.data, mode="scratch", epochs=args.epochs, seed=args.seed,
                                  init_conv1=args.init_conv1, out=str(stem)))
            weights = r.checkpoint
            wall = time.perf_counter() - t0
            print(f"trained in {wall:.0f} s: {weights}")
            extra.update(train_wall_s=round(wall, 1), load_average_after_training=round(os.getloadavg()[0], 2),
                         rebuild_command=" ".join(["python -m alexnet.compact", *(argv if argv is not None
                                                                                    else sys.argv[1:])]))
        t0 = time.perf_counter()
        build_compact(weights, args.out, args.data, ranks, args.tolerance, extra=extra)
        print(f"compressed and evaluated in {time.perf_counter() - t0:.0f} s")
    except (ValueError, D.DataError, W.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
