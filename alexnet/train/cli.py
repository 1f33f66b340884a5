"""The command line: flags -> `TrainConfig` -> `train`, with tqdm bars and Ctrl-C as a clean stop.

    python -m alexnet.train --mode scratch                      # the fast recipe on the flowers
    python -m alexnet.train --mode finetune --weights imagenet          # a new fc8 on cached fc7: seconds
    python -m alexnet.train --mode scratch --recipe lesson              # learns visibly in ~3 min on 2 cores
    torchrun --nproc_per_node 8 -m alexnet.train --mode scratch ...     (DDP, same script)
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from dataclasses import fields

from alexnet import data as D
from alexnet import weights as W
from alexnet.model import ARCHS

from .config import FREEZE_CHOICES, INIT_CONV1, MODES, RECIPES, SCHEDULES, ConfigError, TrainConfig
from .progress import Phase, Progress
from .run import train


DESCRIPTION = ("Train AlexNet on an image folder (one sub-folder per class): fine-tune from weights, or from "
               "scratch with the paper's recipe. Checkpoints go to <out>-last / <out>-best .safetensors + .json; "
               "the app lists those in its cache's checkpoints/ folder.")
EPILOG = ("Data: --data DIR, else $ALEXNET_DATA, else the full flower set if downloaded (--data flowers-full "
          "downloads it, 218 MB, once), else ../shared/data/flower_photos_256 beside a clone, else the flowers pack "
          "shipped with the package (500 photos, offline). Ctrl-C stops after the current step and keeps the last epoch's "
          "checkpoint; --resume --out STEM continues. Multi-GPU: torchrun --nproc_per_node N -m alexnet.train ...")


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m alexnet.train", description=DESCRIPTION, epilog=EPILOG)
    c = TrainConfig()
    p.add_argument("--data", default=None, help="image folder, one sub-folder per class, or 'flowers-full'")
    p.add_argument("--mode", default=c.mode, choices=MODES, help="(default: %(default)s)")
    p.add_argument("--weights", default=None,
                   help="finetune source: 'imagenet', a .safetensors checkpoint, a torchvision .pth, Caffe "
                        ".npy/.npz (default: imagenet if torchvision has already downloaded it)")
    p.add_argument("--arch", default=c.arch, choices=ARCHS, help="scratch architecture (default: %(default)s)")
    p.add_argument("--recipe", default=c.recipe, choices=tuple(RECIPES),
                   help="fast: modern + random-resized crops, early epochs at low resolution, batch 32 (learns "
                        "fastest on a CPU); lesson: fast cut to a few minutes from scratch (99 px, 3 epochs: it "
                        "visibly learns, it is not a real result); modern: AdamW, one-cycle, label smoothing 0.1; "
                        "paper: SGD momentum 0.9, weight decay 5e-4, lr/10 at each third of the run (needs ~90 "
                        "epochs) (default: %(default)s)")
    p.add_argument("--epochs", type=int, default=None,
                   help="(default: the recipe's; fast: 16 from scratch, 10 fine-tuning; others 10)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="(default: the recipe's; fast 32 from scratch, 128 fine-tuning; others 128)")
    p.add_argument("--freeze", default=c.freeze, choices=FREEZE_CHOICES,
                   help="finetune: keep every layer up to and including this one fixed; fc7 trains a new fc8 "
                        "alone on cached fc7 features (seconds), conv5 trains fc6-fc8 on cached pool5 (minutes), "
                        "conv2 and below train on augmented images (default: %(default)s)")
    p.add_argument("--input-size", type=int, default=None, help="crop size (default: 227 paper, 224 torchvision)")
    p.add_argument("--val-fraction", type=float, default=c.val_fraction, help="(default: %(default)s)")
    p.add_argument("--seed", type=int, default=c.seed, help="split, init, order and augmentation (default: %(default)s)")
    p.add_argument("--device", default=c.device, help="auto, cpu, cuda, cuda:1, mps (default: %(default)s)")
    p.add_argument("--out", default=None, help="checkpoint stem (default: <cache>/checkpoints/<data>-<arch>-<mode>-<time>)")
    p.add_argument("--resume", action="store_true", help="continue the run saved at --out")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images, drawn per class")
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    g = p.add_argument_group("scratch model options (alexnet.model.build)")
    g.add_argument("--width", type=float, default=c.width,
                   help="channel multiplier; 0.5 gives 48-128-192-192-128, fc 2048 (default: %(default)s)")
    g.add_argument("--activation", default=c.activation, choices=("relu", "tanh"), help="(default: %(default)s)")
    g.add_argument("--lrn", default=None, action=argparse.BooleanOptionalAction,
                   help="local response normalisation (default: the arch's)")
    g.add_argument("--pool", default="3,2", help="max-pool kernel,stride: 3,2 overlapping as in the paper, or 2,2")
    g.add_argument("--dropout", type=float, default=c.dropout, help="(default: %(default)s)")
    g.add_argument("--groups", type=int, default=None, choices=(1, 2), help="conv2/4/5 groups (default: the arch's)")
    g.add_argument("--init-conv1", default=c.init_conv1, choices=INIT_CONV1,
                   help="bvlc: start conv1 from BVLC's ImageNet AlexNet (assets/) and keep it fixed; the model is "
                        "then labelled 'conv1 from BVLC ImageNet', not fully from scratch (default: %(default)s)")
    g = p.add_argument_group("speed and augmentation")
    g.add_argument("--no-pca", dest="pca_aug", action="store_false", help="turn off the PCA colour augmentation")
    g.add_argument("--compile", action="store_true", help="torch.compile the trained module")
    g.add_argument("--progressive", default=None, action=argparse.BooleanOptionalAction,
                   help="scratch: early epochs at lower input sizes, the last at the test size (default: the recipe's)")
    g.add_argument("--min-size", type=int, default=c.min_size, help="smallest progressive size (default: %(default)s)")
    g.add_argument("--schedule", default=None, choices=SCHEDULES, help="learning-rate schedule (default: the recipe's)")
    g.add_argument("--label-smoothing", type=float, default=None, help="(default: the recipe's)")
    g.add_argument("--feature-cache", default=None, action=argparse.BooleanOptionalAction,
                   help="finetune with every conv frozen: train the fc head on cached conv features "
                        "(default: on for CPU)")
    g.add_argument("--mirror", default=None, action=argparse.BooleanOptionalAction,
                   help="cached features: a mirrored view of every training image too (default: only for "
                        "--freeze conv5; for fc8 alone it does not pay, see benchmarks/finetune_speed.py)")
    return p


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    try:
        pool = tuple(int(v) for v in args.pool.split(","))
        assert len(pool) == 2
    except (ValueError, AssertionError):
        raise ConfigError(f"--pool must be kernel,stride such as 3,2; not {args.pool!r}") from None
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names and k != "pool"}, pool=pool)


def main(argv=None) -> int:
    args = get_args_parser().parse_args(argv)
    from tqdm import tqdm
    stop = threading.Event()
    previous = signal.signal(signal.SIGINT,
                             lambda *_: (stop.set(), print("\nstopping after this step...", file=sys.stderr)))
    bars: dict[str, tqdm] = {}

    def progress(s: Progress):
        phase = s.phase
        if phase in (Phase.DECODE, Phase.FEATURES, Phase.TRAIN) and s.steps:
            bar = bars.get(phase)
            if bar is None:
                for b in bars.values():
                    b.close()
                bar = bars[phase] = tqdm(total=s.steps, desc=str(phase), unit="step" if phase is Phase.TRAIN else "img",
                                         dynamic_ncols=True)
            bar.n = s.step
            if phase is Phase.TRAIN and s.loss is not None:
                bar.set_postfix(epoch=f"{s.epoch}/{s.epochs}", loss=f"{s.loss:.3f}", acc=f"{s.acc:.3f}",
                                val=f"{s.val_acc:.3f}" if s.val_acc is not None else "-",
                                img_s=f"{s.img_per_s:.0f}" if s.img_per_s else "-", refresh=False)
            bar.refresh()
        if phase is Phase.DONE:
            for b in bars.values():
                b.close()

    try:
        result = train(config_from_args(args), progress=progress, cancel=stop)
    except (ConfigError, D.DataError, W.WeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:                                  # a caller that runs main() in-process gets its Ctrl+C back
        signal.signal(signal.SIGINT, previous)
    for row in result.history:
        val = f"{row['val_acc']:.3f}" if row["val_acc"] is not None else "-"
        print(f"epoch {row['epoch']}: train loss {row['train_loss']:.3f} acc {row['train_acc']:.3f} | "
              f"val acc {val} | {row['img_per_s']:.0f} img/s, {row['seconds']:.0f} s")
    if result.cancelled:
        print("cancelled: nothing written for the unfinished epoch", file=sys.stderr)
    print(f"time: {', '.join(f'{k} {v:.1f} s' for k, v in result.phase_seconds.items() if v >= 0.05)}")
    print(f"last checkpoint: {result.checkpoint}\nbest checkpoint: {result.best_checkpoint}")
    return 130 if result.cancelled else 0
