"""The classroom arithmetic: every layer's shape, formula, parameters, MACs and receptive field.

Rows are computed from the model's own modules (not a hand-typed table), so an option
such as `pool=(2, 2)` or `width=0.5` changes the table the same way it changes the net.

    python -m alexnet.shapes --arch paper --size 227
"""
from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from alexnet.model import LAYERS, AlexNet, build, default_input_size


def _pair(v) -> int:
    return v[0] if isinstance(v, tuple) else int(v)


def out_side(w: int, f: int, s: int, p: int) -> dict:
    """The side a kernel F, stride S, padding P leaves of a W-pixel side: floor((W - F + 2P) / S) + 1.

    -> {"out": the side, "exact": (W - F + 2P) / S + 1 before the floor, "whole": no pixel left over,
    "dropped": input pixels the last window does not reach, "formula": the line the table prints}.
    """
    if min(w, f, s) < 1 or p < 0:
        raise ValueError(f"W, F and S must be at least 1 and P at least 0 (got W={w}, F={f}, S={s}, P={p})")
    num = w - f + 2 * p
    if num < 0:
        raise ValueError(f"a {f}x{f} kernel does not fit in {w} pixels with padding {p}: nothing comes out")
    out = num // s + 1
    return dict(out=out, exact=num / s + 1, whole=num % s == 0, dropped=num % s,
                formula=f"floor(({w} - {f} + 2*{p}) / {s}) + 1 = {out}")


def _walk(model: AlexNet, size: int) -> list[dict]:
    """Follow (C, H, W), receptive field and jump through every module; one row per named layer."""
    taps = {id(model.tap(n)): n for n in LAYERS}
    c, h = 3, size               # square inputs: W == H throughout
    rf, jump = 1, 1              # receptive field (input pixels) and jump (input pixels per output step)
    rows, pending = [], dict(ops=[], weights=0, biases=0, macs=0, kernel=None, stride=None,
                             padding=None, groups=None, formula=None, exact=True, in_shape=(3, size, size))
    mods = list(model.features) + [model.avgpool, nn.Flatten()] + list(model.classifier)
    for m in mods:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
            if h - k + 2 * p < 0:
                raise ValueError(f"a {size}x{size} input is too small: {type(m).__name__} ({k}x{k}/{s}) "
                                 f"would get a {h}x{h} map and output nothing")
            side = out_side(h, k, s, p)
            out = side["out"]
            pending.update(kernel=k, stride=s, padding=p, formula=side["formula"], exact=side["whole"])
            if isinstance(m, nn.Conv2d):
                pending.update(groups=m.groups)
                pending["weights"] += m.weight.numel()
                pending["biases"] += m.bias.numel() if m.bias is not None else 0
                pending["macs"] += out * out * m.out_channels * (m.in_channels // m.groups) * k * k
                pending["ops"].append(f"conv {k}x{k}/{s}" + (f" pad {p}" if p else "") + (f" groups={m.groups}" if m.groups > 1 else ""))
                c = m.out_channels
            else:
                pending["ops"].append(f"max-pool {k}/{s}")
            rf, jump, h = rf + (k - 1) * jump, jump * s, out
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            out = _pair(m.output_size)
            if out != h:
                pending["ops"].append(f"adaptive avg-pool {h}->{out}")
            h = out
        elif isinstance(m, nn.Flatten):
            c, h = c * h * h, None
        elif isinstance(m, nn.Linear):
            pending["weights"] += m.weight.numel()
            pending["biases"] += m.bias.numel()
            pending["macs"] += m.in_features * m.out_features
            pending["ops"].append(f"fc {m.in_features}->{m.out_features}")
            c = m.out_features
        elif isinstance(m, nn.LocalResponseNorm):
            pending["ops"].append("LRN")
        elif isinstance(m, (nn.ReLU, nn.Tanh)):
            pending["ops"].append(type(m).__name__)
        elif isinstance(m, nn.Dropout):
            pending["ops"].append(f"dropout {m.p:g}")
        name = taps.get(id(m))
        if name is None:
            continue
        out_shape = (c, h, h) if h is not None else (c,)
        rows.append(dict(
            layer=name, ops=" -> ".join(pending["ops"]), in_shape=pending["in_shape"], out_shape=out_shape,
            kernel=pending["kernel"], stride=pending["stride"], padding=pending["padding"], groups=pending["groups"],
            formula=pending["formula"], exact=pending["exact"],
            weights=pending["weights"], biases=pending["biases"], params=pending["weights"] + pending["biases"],
            macs=pending["macs"], neurons=math.prod(out_shape),
            receptive_field=rf if h is not None else size, jump=jump if h is not None else None,
        ))
        pending = dict(ops=[], weights=0, biases=0, macs=0, kernel=None, stride=None, padding=None,
                       groups=None, formula=None, exact=True, in_shape=out_shape)
    return rows


def layer_table(arch: str, size: int | None = None, **options) -> list[dict]:
    """One dict per layer of `alexnet.model.LAYERS` for `arch` at input `size` x `size`."""
    size = size or default_input_size(arch)
    with torch.device("meta"):  # no 61M-parameter allocation just to read shapes
        model = build(arch, **options)
    return _walk(model, size)


def spec_table(spec: dict, size: int | None = None) -> list[dict]:
    """`layer_table` for a model's own spec (`model.spec.to_dict()` or a sidecar's "spec"), so the
    table matches that model (width 0.5, 2/2 pooling, 5 classes...)."""
    opts = {k: (tuple(v) if k == "pool" else v) for k, v in spec.items() if k != "arch"}
    return layer_table(spec["arch"], size, **opts)


def conv1_note(arch: str, size: int) -> str:
    """Why 224 gives 54.25 in the paper's own arithmetic, and why 227 (or padding 2) fixes it."""
    row = layer_table(arch, size)[0]
    k, s, p = row["kernel"], row["stride"], row["padding"]
    exact = (size - k + 2 * p) / s + 1
    lines = [f"conv1 at {size}x{size}: ({size} - {k} + 2*{p}) / {s} + 1 = {exact:g} -> {row['out_shape'][1]}."]
    paper224 = (224 - 11) / 4 + 1
    lines.append(
        f"The paper says 224x224 inputs, but with an 11x11 stride-4 filter and no padding that gives "
        f"(224 - 11) / 4 + 1 = {paper224:g}, not a whole number: the 55x55 the paper draws needs 227 "
        f"((227 - 11) / 4 + 1 = 55 exactly), which is what the released Caffe model used. "
        f"torchvision keeps 224 and pads by 2 instead: floor((224 - 11 + 4) / 4) + 1 = 55 (the last 1 pixel is dropped).")
    return "\n".join(lines)


def _fmt_shape(s) -> str:
    return "x".join(str(v) for v in s)


def totals(rows: list[dict]) -> dict:
    """Parameters, multiply-adds and neurons (conv and fc outputs; pools hold no new units) of a layer table."""
    return dict(params=sum(r["params"] for r in rows), macs=sum(r["macs"] for r in rows),
                neurons=sum(r["neurons"] for r in rows if not r["layer"].startswith("pool")))


def to_markdown(rows: list[dict]) -> str:
    head = "| layer | ops | in | out | k/s/p/g | formula | weights | biases | MACs | neurons | RF | jump |"
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        ksp = "" if r["kernel"] is None else f"{r['kernel']}/{r['stride']}/{r['padding']}/{r['groups'] or '-'}"
        lines.append(
            f"| {r['layer']} | {r['ops']} | {_fmt_shape(r['in_shape'])} | {_fmt_shape(r['out_shape'])} | {ksp} | "
            f"{r['formula'] or ''} | {r['weights']:,} | {r['biases']:,} | {r['macs']:,} | {r['neurons']:,} | "
            f"{r['receptive_field']} | {r['jump'] or ''} |")
    t = totals(rows)
    lines.append("")
    lines.append(f"Neurons (conv + fc outputs): {t['neurons']:,}; MACs per image: {t['macs']:,}")
    lines.append("")
    lines.append(f"Total parameters: {t['params']:,}")
    return "\n".join(lines)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description="Print AlexNet's layer-by-layer shape arithmetic as a Markdown table.")
    ap.add_argument("--arch", default="paper", choices=["paper", "torchvision"], help="which AlexNet (default: paper)")
    ap.add_argument("--size", type=int, default=None, help="input side in pixels (default: 227 paper, 224 torchvision)")
    ap.add_argument("--num-classes", type=int, default=1000)
    args = ap.parse_args(argv)
    size = args.size or default_input_size(args.arch)
    try:
        rows = layer_table(args.arch, size, num_classes=args.num_classes)
    except ValueError as e:
        ap.error(str(e))
    print(f"# AlexNet ({args.arch}) at {size}x{size}\n")
    print(conv1_note(args.arch, size) + "\n")
    print(to_markdown(rows))


if __name__ == "__main__":
    main()
