"""Explain every image in a folder from the command line: overlays, raw maps and one top-5 table.

    python -m viz.explain_folder DIR --methods gradcam,saliency --out OUT [--weights W] [--target CLASS]

For DIR/sub/cat.jpg and method m, OUT receives
- sub/cat.m.png: the heatmap over the crop the network saw;
- sub/cat.m.npy: the raw map that overlay was drawn from, float32 (H, W) at the model's input size;
and OUT/top5.csv holds one row per image: file, target (the class explained), rank1_class,
rank1_prob, ... rank5_prob. Two files with the same stem in one folder (cat.jpg, cat.png) keep
their extension in the output name (cat.jpg.m.png) so neither overwrites the other.

Every file under DIR is tried (sorted, recursively; hidden files and OUT itself are left out).
Files that are not usable images are skipped and listed on stderr at the end; the exit code is
0 if at least one image was explained, 2 if none was (or for a mistake in the arguments).
"""
from __future__ import annotations

import argparse
import csv
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from alexnet import device as dev_
from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.errors import OptionError, UserError
from alexnet.images import ImageError, open_image
from viz.attribution import METHODS, UNTRAINED_NOTICE, as_batch, check_method, class_index, explain


def parse_methods(text: str) -> list[str]:
    """'gradcam, saliency' -> ['gradcam', 'saliency']; an unknown name raises OptionError with the list."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if not methods:
        raise OptionError(f"--methods is empty; choose from {', '.join(METHODS)}")
    return list(dict.fromkeys(check_method(m) for m in methods))


def is_trained(meta: dict) -> bool:
    """Whether the weights learned anything: a full load report, training metrics or a training state."""
    report = meta.get("load_report") or {}
    if report:
        return not report.get("partial")
    untrained = str(meta.get("source") or "").startswith("untrained")
    return not untrained and bool(meta.get("metrics") or meta.get("train_state"))


def image_files(root: Path, out: Path) -> list[Path]:
    """Every non-hidden file below `root`, sorted, leaving out anything under `out`."""
    out = out.resolve()
    return sorted(p for p in root.rglob("*")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
                  and out not in p.resolve().parents)


def output_stems(root: Path, files: list[Path]) -> dict[Path, Path]:
    """file -> its output stem relative to OUT: sub/cat, or sub/cat.jpg where two files share sub/cat."""
    rel = {f: f.relative_to(root) for f in files}
    count = Counter(r.with_suffix("") for r in rel.values())
    return {f: (r if count[r.with_suffix("")] > 1 else r.with_suffix("")) for f, r in rel.items()}


def top5(model: torch.nn.Module, x: torch.Tensor) -> tuple[list[int], list[float]]:
    """One inference forward: (class indices, softmax probabilities), best first; fewer if K < 5."""
    with torch.inference_mode():
        probs = model(x).float().softmax(dim=1)[0]  # (K,)
    p, i = probs.topk(min(5, probs.numel()))
    return i.tolist(), p.tolist()


def explain_folder(model, meta: dict, root: Path, out: Path, methods: list[str], target: int | None = None,
                   progress: bool = True) -> tuple[list[dict], list[tuple[str, str]]]:
    """Write every image's maps and overlays into `out`, then top5.csv; returns (csv rows, skipped (file, reason))."""
    from tqdm import tqdm
    classes = meta["classes"]
    files = image_files(root, out)
    stems = output_stems(root, files)
    rows, skipped = [], []
    model.eval()
    for f in tqdm(files, desc="explaining", unit="img", disable=not progress):
        name = f.relative_to(root).as_posix()
        try:
            img = open_image(f)
        except (ImageError, OSError) as e:   # OSError: a file that cannot be read at all (permissions, I/O)
            skipped.append((name, str(e)))
            continue
        x = as_batch(model, img, meta)                    # (1, 3, S, S)
        idx, probs = top5(model, x)
        t = idx[0] if target is None else target
        stem = out / stems[f]
        stem.parent.mkdir(parents=True, exist_ok=True)
        for m in methods:
            e = explain(model, x, t, m, meta=meta)
            np.save(f"{stem}.{m}.npy", e.heatmap.astype(np.float32))
            e.overlay.save(f"{stem}.{m}.png")
        row = {"file": name, "target": classes[t]}
        for r, (i, p) in enumerate(zip(idx, probs), 1):
            row[f"rank{r}_class"], row[f"rank{r}_prob"] = classes[i], f"{p:.6f}"
        rows.append(row)
    if rows:
        k = min(5, len(classes))
        cols = ["file", "target"] + [f"rank{r}_{c}" for r in range(1, k + 1) for c in ("class", "prob")]
        with open(out / "top5.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=cols)
            writer.writeheader()
            writer.writerows(rows)
    return rows, skipped


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m viz.explain_folder",
                                description="Explain every image in a folder: an overlay and the raw map per "
                                            "method, and one top5.csv for the folder.")
    p.add_argument("dir", metavar="DIR", help="the image folder (searched recursively)")
    p.add_argument("--methods", default="gradcam,saliency",
                   help=f"comma-separated, from: {', '.join(METHODS)} (default: %(default)s)")
    p.add_argument("--out", required=True, help="output folder (created; the folder structure of DIR is kept)")
    p.add_argument("--weights", default=str(SHIPPED),
                   help="a .safetensors checkpoint, imagenet, a .pth, Caffe .npy/.npz "
                        "(default: the flowers model shipped in assets/)")
    p.add_argument("--target", default=None,
                   help="class to explain, by name (any case) or index (default: each image's top-1)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: %(default)s)")
    return p


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    root, out = Path(args.dir), Path(args.out)
    try:
        methods = parse_methods(args.methods)
        if not root.is_dir():
            raise OptionError(f"{root} is not a folder" if root.exists() else f"{root}: no such folder")
        try:
            device = dev_.pick(args.device)
        except RuntimeError as e:   # --device cuda on a machine without one
            raise OptionError(str(e)) from None
        model, meta = W.load(args.weights)
        target = class_index(meta["classes"], args.target)
        if not is_trained(meta):
            print(f"warning: {UNTRAINED_NOTICE}", file=sys.stderr)
        with warnings.catch_warnings():   # Captum's notes ("did not already require gradients") would break up the bar
            warnings.filterwarnings("ignore", category=UserWarning, module="captum")
            rows, skipped = explain_folder(dev_.prepare(model, device), meta, root, out, methods, target)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if skipped:
        print(f"skipped {len(skipped)} file(s):", file=sys.stderr)
        for name, why in skipped:
            print(f"  {name}: {why}", file=sys.stderr)
    if rows:
        print(f"explained {len(rows)} image(s) with {', '.join(methods)}: {out}")
        return 0
    print(f"error: no image in {root} could be explained", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
