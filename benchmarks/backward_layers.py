"""What do the written-out backwards of alexnet.gradients save? Prints one JSON line.

    python benchmarks/backward_layers.py [--repeats 15] [--out benchmarks/results/backward_layers.json]

Per layer of the paper AlexNet at 8 photos of 227 px (median ms, torch's default thread count):
- conv1's input gradient: oneDNN's backward-data (torch.nn.grad.conv2d_input, what autograd runs) against
  alexnet.gradients.conv_input_grad (by phases), its forward for scale;
- LRN after conv1 and after conv2, forward + backward: autograd's graph of the formula against the
  written-out backward;
and whole panels of 8 (viz.attribution.panels: saliency + Grad-CAM, and Grad-CAM alone) on the shipped
model, with the written-out backwards on and off (alexnet.gradients.by_hand), interleaved call by call so
that a change in the machine's speed hits both alike.
"""
from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

import alexnet.gradients as gradients
import alexnet.model as model_module
from alexnet.compact import SHIPPED, load_compact
from bench_io import emit, median_ms
from viz.attribution import panels


def band(channels: int, size: int = 5, alpha: float = 1e-4) -> torch.Tensor:
    c = torch.arange(channels)
    offset = c[None, :] - c[:, None]
    return ((offset >= -(size // 2)) & (offset <= (size - 1) // 2)).float() * (alpha / size)


def lrn_autograd(x: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return x / (2.0 + F.conv2d(x * x, b[:, :, None, None])).pow(0.75)


def layers(repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(96, 3, 11, 11, generator=g)
    x = torch.randn(8, 3, 227, 227, generator=g)
    grad = torch.randn(8, 96, 55, 55, generator=g)
    out = dict(conv1=dict(
        forward=median_ms(lambda: F.conv2d(x, weight, stride=4), repeats),
        input_grad_autograd=median_ms(lambda: torch.nn.grad.conv2d_input(x.shape, weight, grad, stride=4), repeats),
        input_grad_by_phases=median_ms(lambda: gradients.conv_input_grad(grad, weight, (227, 227), 4, 0), repeats)))
    for name, shape in (("lrn1", (8, 96, 55, 55)), ("lrn2", (8, 256, 27, 27))):
        a = (torch.randn(*shape, generator=g) * 20).relu()
        b, upstream = band(shape[1]), torch.randn(*shape, generator=g)

        def both(f):
            xi = a.clone().requires_grad_()
            torch.autograd.grad(f(xi), xi, upstream)
        out[name] = dict(forward_backward_autograd=median_ms(lambda: both(lambda t: lrn_autograd(t, b)), repeats),
                         forward_backward_by_hand=median_ms(lambda: both(lambda t: gradients.lrn(t, b, 2.0, 0.75)),
                                                            repeats))
    return out


def whole_panels(repeats: int) -> dict:
    model, meta = load_compact(SHIPPED)
    model.eval()
    x = torch.randn(8, 3, meta["input_size"], meta["input_size"], generator=torch.Generator().manual_seed(1))
    on = gradients.by_hand

    def use(flag: bool) -> None:
        f = on if flag else (lambda t: False)
        gradients.by_hand = model_module.by_hand = f
    out = {}
    try:
        for kind, saliency in (("saliency_and_gradcam", True), ("gradcam_only", False)):
            times = {True: [], False: []}
            for flag in (True, False):               # warm-up, both ways
                use(flag)
                panels(model, x, meta=meta, saliency=saliency, keep_acts=False)
            for _ in range(repeats):
                for flag in (True, False):
                    use(flag)
                    t0 = time.perf_counter()
                    panels(model, x, meta=meta, saliency=saliency, keep_acts=False)
                    times[flag].append(time.perf_counter() - t0)
            med = {k: round(sorted(v)[len(v) // 2] * 1e3, 1) for k, v in times.items()}
            out[kind] = dict(autograd=med[False], by_hand=med[True])
    finally:
        use(True)
    return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args(argv)
    out = dict(benchmark="backward_layers", what="median ms, 8 photos of 227 px, paper AlexNet",
               threads=torch.get_num_threads(), cpus=os.cpu_count(), python=platform.python_version(),
               torch=torch.__version__, machine=platform.machine(),
               load_average_before=[round(v, 2) for v in os.getloadavg()],
               layers=layers(args.repeats), panels_of_8=whole_panels(args.repeats))
    return emit(out, args.out)


if __name__ == "__main__":
    main()
