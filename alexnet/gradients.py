"""Backward passes written out for the two AlexNet layers whose autograd backward is slow on a CPU.

Every pixel-gradient method (saliency, Integrated Gradients, SmoothGrad, the sanity checks) goes back
through conv1 and both LRNs to the photo. On a CPU autograd is slow at both (benchmarks/backward_layers.py;
torch 2.14, 2 cores, 8 photos at 227 px, median ms):

- conv1's input gradient (96 kernels of 11x11 at stride 4): oneDNN's backward-data took 58 ms. A stride-s
  transposed convolution is s*s ordinary stride-1 convolutions, one per phase (which of the s*s positions
  inside a stride a pixel sits at), each with the taps of the kernel that land there. All phases at once
  are ONE conv2d with s*s times the output channels, and a pixel shuffle puts each phase's pixels in
  place: 13 ms, the same numbers to float rounding.
- LRN (b = a / d^beta, d = k + alpha/n * the sum of a^2 over n neighbouring channels): autograd keeps the
  pow, the division and the window's 1x1 convolution as separate nodes, each with its own backward and
  its own buffers. Written out, the backward is a few multiplies in place and one 1x1 convolution:
  forward + backward 17 against 37 ms after conv1, 15 against 21 after conv2.
A panel of 8 photos (saliency + Grad-CAM): 230 against 276 ms.

Both backwards are made of torch ops, so they can be differentiated again (create_graph). They run only
for CPU tensors outside autocast (`by_hand`); elsewhere the layers are exactly torch's own.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def by_hand(x: torch.Tensor) -> bool:
    """Use the written-out backwards for `x`: a CPU tensor, no autocast (GPUs have fast kernels of their own)."""
    return x.device.type == "cpu" and not torch.is_autocast_enabled("cpu")


# ---------------------------------------------------------------- conv1: the input gradient by phases
def conv_input_grad(g: torch.Tensor, weight: torch.Tensor, size: tuple[int, int], stride: int,
                    padding: int) -> torch.Tensor:
    """d(score)/d(input) of conv2d(input, weight, stride=stride, padding=padding) (one group, square kernel,
    no dilation), given g = d(score)/d(output) (B, O, Ho, Wo) and the input's (H, W): (B, C, H, W)."""
    out_ch, in_ch, k, _ = weight.shape
    s, p = stride, padding
    taps = -(-k // s)                                                  # taps per phase: ceil(k / s), 3 for 11 at 4
    w = F.pad(weight, (0, taps * s - k, 0, taps * s - k))              # (O, C, taps*s, taps*s): zeros past the kernel
    # w[o, c, a*s + i, b*s + j] is tap (a, b) of phase (i, j); flipped, the transposed conv becomes a correlation
    w = w.view(out_ch, in_ch, taps, s, taps, s).permute(1, 3, 5, 0, 2, 4).flip(-2, -1)   # (C, s, s, O, taps, taps)
    w = w.reshape(in_ch * s * s, out_ch, taps, taps)                   # channel c*s*s + i*s + j: phase (i, j) of c
    phases = F.conv2d(g, w, padding=taps - 1)                          # (B, C*s*s, Ho+taps-1, Wo+taps-1)
    full = F.pixel_shuffle(phases, s)                                  # (B, C, s*(Ho+taps-1), ...): the padded input's
    h, w_ = size
    full = full[:, :, p:p + h, p:p + w_]                               # the padding's rows and columns dropped
    short_h, short_w = h - full.shape[-2], w_ - full.shape[-1]
    if short_h or short_w:                                             # pixels past the last window: no gradient
        full = F.pad(full, (0, short_w, 0, short_h))
    return full.contiguous()                                           # (B, C, H, W)


class _PhaseConv(torch.autograd.Function):
    """conv2d whose input gradient is `conv_input_grad`; the weight and bias gradients are torch's."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride: int, padding: int):
        ctx.save_for_backward(x, weight)
        ctx.stride, ctx.padding, ctx.has_bias = stride, padding, bias is not None
        return F.conv2d(x, weight, bias, stride, padding)

    @staticmethod
    def backward(ctx, g):
        x, weight = ctx.saved_tensors
        need_x, need_w, need_b = ctx.needs_input_grad[:3]
        gx = conv_input_grad(g, weight, tuple(x.shape[-2:]), ctx.stride, ctx.padding) if need_x else None
        gw = torch.nn.grad.conv2d_weight(x, weight.shape, g, ctx.stride, ctx.padding) if need_w else None
        gb = g.sum((0, 2, 3)) if need_b and ctx.has_bias else None
        return gx, gw, gb, None, None


class StridedConv2d(nn.Conv2d):
    """nn.Conv2d (same parameters, same state dict) whose input gradient on a CPU is computed by phases.

    Only a pass that differentiates with respect to its input (a pixel-gradient map) takes the written-out
    path; training (weights only) and inference run nn.Conv2d's own forward."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled() and self._by_phases() and by_hand(x):
            return _PhaseConv.apply(x, self.weight, self.bias, self.stride[0], self.padding[0])
        return super().forward(x)

    def _by_phases(self) -> bool:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (self.groups == 1 and self.dilation == (1, 1) and self.padding_mode == "zeros"
                and k[0] == k[1] and s[0] == s[1] > 1 and isinstance(p, tuple) and p[0] == p[1])


# ---------------------------------------------------------------- LRN: the backward written out
def lrn(x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
    """b = a / (k + conv2d(a^2, band))^beta for a (B, C, H, W) and band (C, C) (alpha/n inside each
    channel's window): alexnet.model.LocalResponseNorm with a gradient, its backward written out."""
    return _LRN.apply(x, band, k, beta)


class _LRN(torch.autograd.Function):
    """b = a * r, r = d^-beta, d = k + conv2d(a^2, band).

    db: g * r  -  2 beta * a * conv2d(g * a * r / d, band^T): the direct term, and the one through the
    windows of every channel that a sits in (d's gradient is -beta * g * a * r / d)."""

    @staticmethod
    def forward(ctx, x, band, k: float, beta: float):
        d = F.conv2d(x * x, band[:, :, None, None]).add_(k)                   # (B, C, H, W)
        if beta == 0.75:                                                     # d^-0.75 as rsqrt(d) * sqrt(rsqrt(d)):
            r = d.rsqrt()                                                    # libm's pow is several times slower
            r.mul_(r.sqrt())
        else:
            r = d.pow(-beta)
        ctx.save_for_backward(x, band, d, r)
        ctx.k, ctx.beta = k, beta
        return x * r

    @staticmethod
    def backward(ctx, g):
        x, band, d, r = ctx.saved_tensors
        if torch.is_grad_enabled():
            # create_graph: this backward will be differentiated too, so d and r are recomputed from x with their
            # graph (the saved ones were made without one), and nothing is written in place
            d = F.conv2d(x * x, band[:, :, None, None]) + ctx.k
            r = d.pow(-ctx.beta)
            through_d = F.conv2d(g * x * r / d, band.t()[:, :, None, None])
            return g * r - (2 * ctx.beta) * x * through_d, None, None, None
        # in place otherwise: each fresh buffer is 9 MB for 8 photos after conv1, and their page faults cost
        through_d = F.conv2d((g * x).mul_(r).div_(d), band.t()[:, :, None, None])   # (B, C, H, W)
        return (g * r).addcmul_(x, through_d, value=-2 * ctx.beta), None, None, None
