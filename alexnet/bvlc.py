"""The one piece of real 2012 AlexNet in the repository: BVLC's ImageNet conv1 (assets/bvlc_alexnet_conv1.npz).

Two uses:
- `conv1()`: the released 96 filters (OIHW, RGB) and biases, for the Filters tab's Figure 3 panel.
- `init_conv1_from_bvlc(model, mean, std)`: start a scratch model's conv1 from them, rewritten for
  the model's own input normalisation and rescaled to the size of a default initialisation, so
  the untouched layers above see inputs of the scale they were initialised for.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from alexnet import weights as W
from alexnet.model import AlexNet

CONV1_FILE = W.ASSETS / "bvlc_alexnet_conv1.npz"
# Caffe fed conv1 with 0-255 RGB minus this per-channel mean (the ILSVRC-2012 mean pixel).
CAFFE_MEAN_255 = (123.0, 117.0, 104.0)
# What a checkpoint's sidecar says in `source` when its conv1 came from here, and what the UI shows.
BVLC_SOURCE = "scratch, conv1 from BVLC ImageNet"
BVLC_LABEL = BVLC_SOURCE


def conv1() -> tuple[torch.Tensor, torch.Tensor]:
    """(weight (96, 3, 11, 11) in RGB order, bias (96,)) as BVLC released them (0-255 input units)."""
    with np.load(CONV1_FILE, allow_pickle=False) as z:
        return torch.from_numpy(z["weight"].astype(np.float32)), torch.from_numpy(z["bias"].astype(np.float32))


@torch.no_grad()
def init_conv1_from_bvlc(model: AlexNet, mean, std) -> None:
    """Copy BVLC's conv1 into `model` for inputs normalised as (x - mean) / std, x in 0-1.

    Caffe's conv1 saw c = 255 * x - CAFFE_MEAN_255. With x = std * z + mean (z: what our model
    sees), W.c + b = (255 * std * W).z + b + W.(255 * mean - CAFFE_MEAN_255): the same filters,
    re-expressed for z. One common factor then brings the weights to the standard deviation of
    PyTorch's default initialisation, so conv2 and above start in their usual regime. ReLU and
    max-pooling commute with a positive scale, so every filter keeps its shape and colour; the
    LRN between them does not (it normalises by 2 + 1e-4/5 * sum of squares), and at this scale
    it acts as in a model trained from scratch, nearly linear, rather than as it did in Caffe.
    """
    layer = model.param_layer("conv1")
    w, b = conv1()
    if tuple(layer.weight.shape) != tuple(w.shape):
        raise ValueError(f"BVLC conv1 is {tuple(w.shape)}; this model's conv1 is {tuple(layer.weight.shape)}")
    std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    offset = torch.tensor([255.0 * m - c for m, c in zip(mean, CAFFE_MEAN_255)]).view(1, 3, 1, 1)
    w_z = w * 255.0 * std_t                                               # (96, 3, 11, 11) for z inputs
    b_z = b + (w * offset).sum(dim=(1, 2, 3))                             # (96,)
    fan_in = w.shape[1] * w.shape[2] * w.shape[3]
    scale = (1.0 / math.sqrt(3 * fan_in)) / w_z.std().item()              # kaiming_uniform(a=sqrt(5)) std
    layer.weight.copy_(w_z * scale)
    layer.bias.copy_(b_z * scale)
