"""The compact flowers model shipped in assets/: fc6 and fc7 as truncated-SVD factors, fp16.

A trained paper AlexNet for 5 classes has 56.9 M parameters (228 MB in fp32); 54 M of them sit
in fc6 (9216 x 4096) and fc7 (4096 x 4096). Denton et al. (2014, "Exploiting Linear Structure
Within Convolutional Networks") compressed AlexNet's fully connected layers by keeping the
top singular directions of each weight matrix: W (out, in) ~ U_r (out, r) @ V_r (r, in). Stored
that way (and in fp16) the model fits in a few MB; at load the factors are multiplied back into
dense `nn.Linear` weights, so at run time it is exactly the paper's network.

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
import sys
import time
from dataclasses import fields
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from alexnet import data as D
from alexnet import weights as W
from alexnet.model import AlexNet, from_spec

COMPACT_FORMAT = W.COMPACT_FORMAT
FACTORED = ("fc6", "fc7")
SHIPPED = W.ASSETS / "flowers_alexnet.safetensors"
BUDGET_BYTES = 12_000_000                      # weights + sidecar, the repository's limit for a shipped model
DEFAULT_RANKS = (1, 2, 4, 8, 16, 24, 32, 48, 64, 96, 128, 160)
DATA_CREDIT = ("Trained on the TensorFlow flower photos (daisy, dandelion, roses, sunflowers, tulips), "
               "licensed CC-BY 2.0 by their Flickr photographers; the per-photo credits are in LICENSE.txt "
               "of the dataset (https://creativecommons.org/licenses/by/2.0/).")


# ---------------------------------------------------------------- factor and expand

def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD of W (out, in): u (out, k), s (k,), vh (k, in). Computed once per layer, then truncated."""
    return torch.linalg.svd(weight.detach().float().cpu(), full_matrices=False)


def truncate(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U (out, r), V (r, in) with U @ V the best rank-r approximation of u diag(s) vh (Eckart-Young).

    The singular values are split evenly (sqrt into each side), so both factors have similar
    ranges, which is what fp16 storage wants.
    """
    r = min(rank, len(s))
    root = s[:r].sqrt()
    return u[:, :r] * root, root[:, None] * vh[:r]                            # (out, r), (r, in)


class Factored:
    """A trained model with its fc6/fc7 SVDs computed once (a 9216 x 4096 SVD takes seconds on a CPU)."""

    def __init__(self, model: AlexNet):
        self.model = model
        self.svds = {model.param_key(n) + ".weight": svd(model.param_layer(n).weight) for n in FACTORED}

    def tensors(self, rank: int) -> dict[str, torch.Tensor]:
        """The state dict in fp16, fc6/fc7 weights replaced by '<key>.weight.u' / '.weight.v' factors."""
        out = {}
        for k, v in self.model.state_dict().items():
            if k in self.svds:
                u, vv = truncate(*self.svds[k], rank)
                out[k + ".u"], out[k + ".v"] = u.half().contiguous(), vv.half().contiguous()
            else:
                out[k] = v.detach().cpu().half().contiguous()
        return out

    def at_rank(self, rank: int) -> AlexNet:
        """A copy of the model whose weights are exactly what a compact file at `rank` expands to."""
        copy = from_spec(self.model.spec.to_dict())
        copy.load_state_dict(expand_tensors(self.tensors(rank)))
        return copy.eval()


def expand_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`Factored.tensors` output -> a dense fp32 state dict that `AlexNet.load_state_dict` takes."""
    state = {}
    for k, v in tensors.items():
        if k.endswith(".weight.u"):
            base = k[:-2]
            state[base] = v.float() @ tensors[base + ".v"].float()         # (out, r) @ (r, in) -> (out, in)
        elif not k.endswith(".weight.v"):
            state[k] = v.float()
    return state


def is_compact(meta: dict) -> bool:
    return meta.get("format") == COMPACT_FORMAT


def load_compact(path) -> tuple[AlexNet, dict]:
    """Read a compact file (no pickle) and expand it into the dense paper network."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["alexnet_explainer"])
    model = from_spec(meta["spec"])
    W.load_state_dict_checked(model, expand_tensors(load_file(str(path))))
    return model.eval(), meta


def save_compact(stem, model: "AlexNet | Factored", meta: dict, rank: int) -> Path:
    """Write `<stem>.safetensors` (factors, fp16, metadata in the header) and `<stem>.json`, atomically."""
    stem = Path(stem).with_suffix("") if Path(stem).suffix in (".safetensors", ".json") else Path(stem)
    path = stem.with_name(stem.name + ".safetensors")
    meta = dict(meta, format=COMPACT_FORMAT, svd=dict(meta.get("svd", {}), rank=rank, layers=list(FACTORED),
                                                       dtype="float16"))
    tensors = (model if isinstance(model, Factored) else Factored(model)).tensors(rank)
    W.atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata={"alexnet_explainer": json.dumps(meta)}))
    W.atomic_write_text(stem.with_name(stem.name + ".json"), json.dumps(meta, indent=1))
    return path


def compact_bytes(model: AlexNet, rank: int) -> int:
    """Bytes of the tensors at `rank` (fp16), without writing anything."""
    n = 0
    for name in FACTORED:
        out_f, in_f = model.param_layer(name).weight.shape
        n += (out_f + in_f) * rank
    skip = {model.param_key(n) + ".weight" for n in FACTORED}
    n += sum(v.numel() for k, v in model.state_dict().items() if k not in skip)
    return 2 * n


# ---------------------------------------------------------------- the shipped file's sidecar

def train_command(config: dict) -> str:
    """The `python -m alexnet.train` line that reproduces a run: every setting that differs from the defaults."""
    from alexnet.train import TrainConfig, get_args_parser
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
    from alexnet.evaluate import split_indices
    idx = split_indices(meta, decoded, "val")
    return idx, [Path(decoded.paths[i]).relative_to(root).as_posix() for i in idx.tolist()]


def build_compact(weights, out, data=None, ranks=DEFAULT_RANKS, tolerance=0.005, budget=BUDGET_BYTES,
                  progress=lambda msg: print(msg, flush=True), extra: dict | None = None) -> dict:
    """Evaluate the dense checkpoint, pick the rank, write the compact file; returns its sidecar
    (`extra` is merged into it: how it was rebuilt, on which machine, in how long)."""
    from alexnet.evaluate import evaluate
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
    import platform
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
            from alexnet.train import TrainConfig, train
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
