"""`python -m report`: the paper-fidelity report's command line (the composition root).

    python -m report --out reports                                    # full size (a GPU)
    python -m report --size 80 --width 0.25 --epochs 8 --limit 1000 --batch-size 32 \\
        --seeds 3 --target-error 0.6 --small-epochs 20 --device cpu   # ~15 min on 2 shared CPU cores
    python -m report --quick --data DIR                               # tiny everything (tests)
    python -m report --render reports/paper.json                      # redo text + plots, no training

report/example/ holds the CPU run's output (shipped with the package; the About tab shows it).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from dataclasses import replace
from pathlib import Path

from alexnet import data as D
from alexnet import weights as W
from alexnet.train import RECIPES
from report.config import SECTIONS, PaperConfig, quick
from report.make import make_report
from report.render import write_report


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m report",
        description="Check the AlexNet paper's claims on this project's code and data: writes <out>/paper.md, "
                    "paper.json and PNG plots. Defaults are full size (use a GPU); for 2 CPU cores try "
                    "--size 80 --width 0.25 --epochs 8 --limit 1000 --batch-size 32.")
    p.add_argument("--out", default=None, help="output folder (default: reports)")
    p.add_argument("--data", default=None, help="image folder, one sub-folder per class (default: the flowers)")
    p.add_argument("--size", type=int, default=None, help="crop size fed to the paper net (default: 227; CPU: 80-112)")
    p.add_argument("--image-size", type=int, default=None, help="decode size (default: size * 256 / 227)")
    p.add_argument("--width", type=float, default=None, help="channel multiplier (default: 1; CPU: 0.25)")
    p.add_argument("--epochs", type=int, default=None, help="epochs per ablation run (default: 30)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per variant (default: 3)")
    p.add_argument("--limit", type=int, default=None, help="use at most this many images, stratified (default: all)")
    p.add_argument("--batch-size", type=int, default=None, help="(default: 128)")
    p.add_argument("--recipe", default=None, choices=tuple(RECIPES), help="training recipe (default: modern)")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: the recipe's)")
    p.add_argument("--target-error", type=float, default=None,
                   help="ReLU vs tanh on the paper net: epochs to this training error (default: 0.5)")
    p.add_argument("--small-epochs", type=int, default=None, help="epochs of the 4-layer 32px net (default: 30)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections (default: {','.join(SECTIONS)})")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps (default: %(default)s)")
    p.add_argument("--render", default=None, metavar="PAPER_JSON",
                   help="only redo paper.md and the plots from an earlier run's paper.json (into --out, default: "
                        "its folder); nothing is trained")
    p.add_argument("--quick", action="store_true",
                   help="tiny everything (67px, width 0.125, 1 epoch, 2 seeds, 30 images): an end-to-end check")
    return p


def config_from_args(args: argparse.Namespace, argv: list[str]) -> PaperConfig:
    given = {k: v for k, v in vars(args).items() if v is not None and k not in ("quick", "only", "render")}
    only = tuple(s.strip() for s in args.only.split(",") if s.strip())
    cfg = quick(**given) if args.quick else PaperConfig(**given)
    return replace(cfg, only=only, argv=list(argv))


def render(path: str, out: str | None) -> int:
    """Redo paper.md and the plots of an earlier run from its paper.json."""
    try:
        src = Path(path)
        payload = json.loads(src.read_text())
        payload["rendered"] = _dt.datetime.now().astimezone().isoformat(timespec="seconds")
        result = write_report(payload, out or src.parent)
    except (OSError, ValueError, KeyError, D.DataError) as e:
        print(f"error: cannot render {path}: {e}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in result['paths'])}")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = get_args_parser().parse_args(argv)
    if args.render:
        return render(args.render, args.out)
    try:
        result = make_report(config_from_args(args, argv))
    except (ValueError, D.DataError, W.WeightsError) as e:   # ConfigError is a ValueError
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {', '.join(str(p) for p in result['paths'])} in {result['seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
