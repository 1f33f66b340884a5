"""Top-1 / top-5 on decoded images, with the centre crop or the paper's 10-crop test.

    python -m alexnet.evaluate --weights CKPT.safetensors --data DIR [--ten-crop] [--split val|all]

10-crop (paper section 4.1): the four corner patches and the centre patch plus their
horizontal reflections; the network's softmax outputs are averaged over the ten.
The checkpoint's sidecar supplies everything else: input size, mean/std, class names,
and the split seed, so `--split val` scores exactly the images training held out.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from alexnet import data as D
from alexnet import device as dev_
from alexnet import weights as W
from alexnet.features import dataset_pass
from alexnet.images import PREPARE_SIZE, ten_crop  # noqa: F401  (re-exported: evaluate's 10-crop is alexnet.images')


def predict(model: nn.Module, meta: dict, images: torch.Tensor, use_ten_crop: bool = False, batch_size: int = 64,
            device=None) -> torch.Tensor:
    """Softmax probabilities (N, K) for uint8 images (N, 3, S, S), S >= the model's input size;
    with `use_ten_crop` the softmax averaged over the ten views."""
    if len(images) == 0:
        return torch.zeros((0, len(meta["classes"])))
    device = dev_.pick(device or "auto")
    model = dev_.prepare(model, device)
    size = int(meta.get("input_size") or model.spec.input_size)
    views = ("ten",) if use_ten_crop else ("centre",)
    out = dataset_pass(model, images, size, meta["mean"], meta["std"],
                       record=lambda m, x: {"p": m(x).float().softmax(-1)}, views=views, batch_size=batch_size)
    p = torch.from_numpy(out["p"])                                     # (N, K) or (N, 10, K)
    return p.mean(1) if use_ten_crop else p


def evaluate(model: nn.Module, meta: dict, decoded_or_images, labels=None, ten_crop: bool = False,
             batch_size: int = 64, device=None) -> dict:
    """Top-1, top-5, confusion matrix (rows = true class, columns = predicted), per-class accuracy
    (class name -> accuracy, None for a class with no images) and the top-1 predictions (N,).

    `decoded_or_images` is a `alexnet.data.Decoded` (its labels are used unless `labels` is given)
    or a uint8 tensor (N, 3, S, S) with `labels` (N,) indexing `meta["classes"]`.
    """
    if isinstance(decoded_or_images, D.Decoded):
        images = decoded_or_images.images
        labels = decoded_or_images.labels if labels is None else labels
    else:
        images = decoded_or_images
    if labels is None:
        raise ValueError("evaluate needs labels for a plain image tensor")
    labels = torch.as_tensor(labels, dtype=torch.int64)
    classes = list(meta["classes"])
    k = len(classes)
    probs = predict(model, meta, images, ten_crop, batch_size, device)   # (N, K)
    top = probs.topk(min(5, k), dim=1).indices                           # (N, 5)
    pred = top[:, 0]
    confusion = torch.zeros((k, k), dtype=torch.int64)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    counts = confusion.sum(1)
    n = max(1, len(labels))
    return dict(
        top1=(pred == labels).sum().item() / n,
        top5=(top == labels[:, None]).any(1).sum().item() / n,
        confusion=confusion.tolist(),
        per_class={c: (confusion[i, i].item() / counts[i].item() if counts[i] else None) for i, c in enumerate(classes)},
        predictions=pred,                                              # (N,) int64
        n=len(labels), classes=classes, ten_crop=ten_crop,
    )


def split_indices(meta: dict, decoded: D.Decoded, split: str) -> torch.Tensor:
    """The images to score: all of them, or the validation split recorded in the checkpoint."""
    if split == "all":
        return torch.arange(len(decoded.labels))
    s = meta.get("split")
    if meta.get("split_seed") is None or not s:
        raise ValueError("this checkpoint records no train/val split (it was not trained by alexnet.train); "
                         "use --split all")
    if s.get("data_key") == decoded.key and s.get("val") is not None:
        return torch.as_tensor(s["val"], dtype=torch.int64)
    if s.get("data_key"):
        print("warning: the data folder changed since training (files added, removed or touched); "
              "the validation split may include training images", file=sys.stderr)
    keep = D.stratified_subset(decoded.labels, s.get("limit"), meta["split_seed"])
    _, val = D.stratified_split(decoded.labels[keep], s["val_fraction"], meta["split_seed"])
    return keep[val]


def _relabel(decoded: D.Decoded, classes: list[str]) -> torch.Tensor:
    """The data's labels as indices into the model's classes (matched by name)."""
    missing = [c for c in decoded.classes if c not in classes]
    if missing:
        raise ValueError(f"the data has classes the model does not know: {', '.join(missing[:5])}"
                         f"{'...' if len(missing) > 5 else ''}; the model's classes are {', '.join(classes[:5])}...")
    lookup = torch.tensor([classes.index(c) for c in decoded.classes])
    return lookup[decoded.labels]


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m alexnet.evaluate",
                                description="Score a checkpoint on an image folder: top-1, top-5, per-class "
                                            "accuracy and the confusion matrix.")
    p.add_argument("--weights", required=True, help="a .safetensors checkpoint (or imagenet, a .pth, Caffe .npy/.npz)")
    p.add_argument("--data", default=None, help="image folder (default: alexnet.data.find_data's order, ending in the shipped flowers pack)")
    p.add_argument("--split", default="val", choices=("val", "all"),
                   help="val: the images the checkpoint's training held out, rebuilt from its split seed; "
                        "all: every image (default: %(default)s)")
    p.add_argument("--ten-crop", action="store_true", help="average the softmax over 4 corners + centre and their mirrors")
    p.add_argument("--batch-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    try:
        try:
            dev_.pick(args.device)
        except RuntimeError as e:   # --device cuda on a machine without one
            raise ValueError(str(e)) from None
        model, meta = W.load(args.weights)
        size = int((meta.get("config") or {}).get("image_size") or PREPARE_SIZE)   # decode as training did
        decoded = D.decode_folder(D.find_data_dir(args.data), max(size, int(meta.get("input_size") or 0)))
        idx = split_indices(meta, decoded, args.split)
        labels = _relabel(decoded, meta["classes"])
        res = evaluate(model, meta, decoded.images[idx], labels[idx], args.ten_crop, args.batch_size, args.device)
    except (D.DataError, W.WeightsError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for path, why in decoded.skipped:
        print(f"skipped {path}: {why}", file=sys.stderr)
    if args.json:
        print(json.dumps(dict(res, predictions=res["predictions"].tolist())))
        return 0
    crops = "10-crop" if args.ten_crop else "centre crop"
    print(f"{args.weights}: {res['n']} images ({args.split}), {crops}")
    print(f"top-1 {res['top1']:.4f}   top-5 {res['top5']:.4f}")
    present = sorted(set(labels[idx].tolist()))
    names = [meta["classes"][i] for i in present]
    width = max(len(n) for n in names)
    print("\nper class:")
    for i, n in zip(present, names):
        print(f"  {n:<{width}}  {res['per_class'][n]:.3f}  ({sum(res['confusion'][i])} images)")
    print("\nconfusion (rows: true, columns: predicted):")
    print(" " * (width + 2) + " ".join(f"{n[:6]:>6}" for n in names))
    for i, n in zip(present, names):
        print(f"  {n:<{width}}" + " ".join(f"{res['confusion'][i][j]:>6}" for j in present))
    return 0


if __name__ == "__main__":
    sys.exit(main())
