"""Training throughput: the seed-002 recipe against this engine, same machine, same data, same split.

    python benchmarks/train_throughput.py --epochs 2                 # the comparison in the issue
    python benchmarks/train_throughput.py --epochs 1 --limit 800 --a-steps 20   # a few minutes on 2 cores
    python benchmarks/train_throughput.py --skip-a --width 1 --input-size 227 --batch-size 256   # GPU target

(a) seed-002: half-width paper AlexNet (48-128-192-192-128, fc 2048), torchvision ImageFolder
    + PIL RandomResizedCrop(224) + flip per image in a DataLoader (batch 32, 2 workers), Adam 2e-4.
(b) engine, scratch: the same model, decoded-once uint8 data, batched crop/flip/PCA lighting.
(c) engine, fine-tune: (b)'s checkpoint (or --weights) with every conv frozen: the conv features
    are computed once, then only fc6-fc8 train on them.
Prints one JSON line: per path train img/s, wall seconds, val accuracy, and each ratio to (a).
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


import torch
import torch.nn.functional as F

from alexnet import data as D
from alexnet import device as dev_
from alexnet.model import build
from alexnet.train import TrainConfig, train
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD


def seed002(root: Path, train_idx, val_idx, epochs: int, max_steps: int | None, width: float, seed: int,
            eval_every_epoch: bool = False) -> dict:
    """The per-image PIL pipeline, measured over `max_steps` steps (or whole epochs when None).

    eval_every_epoch: validate after every epoch (inside the wall clock) and return the curve
    as `curve`: [{epoch, wall_s, val_acc}] (benchmarks/train_scratch.py).
    """
    from torch.utils.data import DataLoader, Subset
    from torchvision import datasets, transforms as T
    torch.manual_seed(seed)
    norm = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    val_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    train_set = Subset(datasets.ImageFolder(root, train_tf), train_idx.tolist())
    val_set = Subset(datasets.ImageFolder(root, val_tf), val_idx.tolist())
    loader = DataLoader(train_set, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)
    model = build("paper", len(train_set.dataset.classes), width=width)
    opt = torch.optim.Adam(model.parameters(), lr=2e-4)
    seen, steps, t0 = 0, 0, time.perf_counter()
    curve, eval_s = [], 0.0

    def validate() -> float:
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in DataLoader(val_set, batch_size=128, num_workers=2):
                correct += (model(x).argmax(1) == y).sum().item()
        return correct / max(1, len(val_set))

    for epoch in range(epochs):
        model.train()
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen, steps = seen + len(y), steps + 1
            if max_steps is not None and steps >= max_steps:
                break
        if eval_every_epoch:
            e0 = time.perf_counter()
            curve.append(dict(epoch=epoch + 1, val_acc=validate(), wall_s=round(time.perf_counter() - t0, 2)))
            eval_s += time.perf_counter() - e0
            print(f"(a) epoch {epoch + 1}: val {curve[-1]['val_acc']:.3f} at {curve[-1]['wall_s']:.0f} s", flush=True)
        if max_steps is not None and steps >= max_steps:
            break
    train_s = time.perf_counter() - t0 - eval_s
    val_acc = curve[-1]["val_acc"] if curve else validate()
    out = dict(img_per_s=seen / train_s, train_seconds=train_s, wall_seconds=time.perf_counter() - t0,
               images=seen, steps=steps, val_acc=val_acc)
    return dict(out, curve=curve) if eval_every_epoch else out


def engine(cfg: TrainConfig) -> dict:
    t0 = time.perf_counter()
    r = train(cfg)
    wall = time.perf_counter() - t0
    h = r.history
    trained = sum(row["img_per_s"] * row["train_seconds"] for row in h)
    train_s = sum(row["train_seconds"] for row in h)
    return dict(img_per_s=trained / max(train_s, 1e-9), train_seconds=train_s, wall_seconds=wall,
                images=round(trained), steps=r.meta["train_state"]["step"], val_acc=h[-1]["val_acc"],
                path=r.meta["path"], features_seconds=r.meta.get("features_seconds"),
                features_cached=r.meta.get("features_cached"), checkpoint=str(r.best_checkpoint))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", default=None, help="image folder (default: $ALEXNET_DATA or ../shared/data/flower_photos_256)")
    p.add_argument("--epochs", type=int, default=2, help="epochs for every path")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images (stratified)")
    p.add_argument("--a-steps", type=int, default=None, help="measure (a) on this many steps instead of full epochs")
    p.add_argument("--skip-a", action="store_true", help="only the engine (e.g. on a GPU)")
    p.add_argument("--width", type=float, default=0.5, help="engine scratch width (0.5 = the seed-002 model)")
    p.add_argument("--input-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=None,
                   help="engine scratch batch size (default: 64 on CPU, where it runs faster per image than 128; 256 on GPU)")
    p.add_argument("--recipe", default="modern", choices=("paper", "modern"), help="engine scratch recipe")
    p.add_argument("--weights", default=None, help="fine-tune source (default: the scratch run's checkpoint)")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    root = D.find_data_dir(args.data)
    t0 = time.perf_counter()
    decoded = D.decode_folder(root)
    decode_s = time.perf_counter() - t0
    keep = D.stratified_subset(decoded.labels, args.limit, args.seed)
    tr, va = D.stratified_split(decoded.labels[keep], 0.2, args.seed)
    out = Path(tempfile.mkdtemp(prefix="alexnet-bench-"))
    device = dev_.pick(args.device)
    batch = args.batch_size or (64 if device.type == "cpu" else 256)
    result = dict(device=str(device), cpu_threads=torch.get_num_threads(), data=str(root), images=len(keep),
                  train_images=len(tr), val_images=len(va), epochs=args.epochs, engine_batch=batch,
                  decode_seconds=round(decode_s, 2), load_average=round(os.getloadavg()[0], 2))

    if not args.skip_a:
        if decoded.paths != [str(q) for q in D.list_images(root)[0]]:
            raise SystemExit("(a) needs a folder where every file decodes, so both paths see the same split")
        result["a_seed002"] = seed002(root, keep[tr], keep[va], args.epochs, args.a_steps, 0.5, args.seed)

    common = dict(data=str(root), epochs=args.epochs, limit=args.limit, seed=args.seed, device=args.device,
                  input_size=args.input_size)
    result["b_scratch"] = engine(TrainConfig(mode="scratch", arch="paper", width=args.width, recipe=args.recipe,
                                             batch_size=batch, out=str(out / "scratch"), **common))
    result["c_finetune"] = engine(TrainConfig(mode="finetune", weights=args.weights or result["b_scratch"]["checkpoint"],
                                              recipe="modern", batch_size=128, freeze="conv5",
                                              out=str(out / "finetune"), **common))
    if "a_seed002" in result:
        a = result["a_seed002"]["img_per_s"]
        for k in ("b_scratch", "c_finetune"):
            result[k]["ratio_vs_a"] = round(result[k]["img_per_s"] / a, 2)
        c = result["c_finetune"]
        # End to end: every image the fine-tune trained on, over its whole wall time (features included).
        result["c_finetune"]["end_to_end_ratio_vs_a"] = round(c["images"] / c["wall_seconds"] / a, 2)
    for k in ("a_seed002", "b_scratch", "c_finetune"):
        if k in result:
            result[k] = {n: (round(v, 4) if isinstance(v, float) else v) for n, v in result[k].items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
