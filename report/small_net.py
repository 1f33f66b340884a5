"""ReLU vs tanh on a small 4-layer CNN at 32x32 px, as in the paper's Figure 1 (there: CIFAR-10; here: the
flowers downsampled, since CIFAR-10 is not available offline), with its own plain SGD loop."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from alexnet.model import reinit
from report.stats import epochs_to_error

SMALL_SIZE = 32            # the CIFAR-style net's input side, as CIFAR-10
SMALL_TARGET_ERROR = 0.25  # the paper's Figure 1 threshold
SMALL_LR = 0.01            # SGD, momentum 0.9, batch 64, the same for both activations


def small_net(activation: str, num_classes: int, generator: torch.Generator | None = None) -> nn.Sequential:
    """A 4-layer CIFAR-style CNN (3 conv + 1 fc) at 32x32; `generator` draws its initial weights."""
    act = nn.ReLU if activation == "relu" else nn.Tanh
    net = nn.Sequential(
        nn.Conv2d(3, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),    # (B, 32, 15, 15)
        nn.Conv2d(32, 32, 5, padding=2), act(), nn.MaxPool2d(3, 2),   # (B, 32, 7, 7)
        nn.Conv2d(32, 64, 5, padding=2), act(), nn.MaxPool2d(3, 2),   # (B, 64, 3, 3)
        nn.Flatten(), nn.Linear(64 * 3 * 3, num_classes),             # (B, 576) -> (B, K)
    )
    if generator is not None:
        reinit(net, generator)
    return net


def train_small(images32: torch.Tensor, labels: torch.Tensor, activation: str, seed: int, epochs: int,
                device: torch.device, batch_size: int = 64, lr: float = SMALL_LR) -> list[dict]:
    """Plain SGD on normalised 32x32 float images; returns per-epoch training error (running, as Fig. 1)."""
    net = small_net(activation, int(labels.max()) + 1, torch.Generator().manual_seed(seed)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    x, y = images32.to(device), labels.to(device)
    gen = torch.Generator().manual_seed(seed)
    history = []
    for epoch in range(1, epochs + 1):
        net.train()
        wrong, t0 = 0, time.perf_counter()
        for b in torch.randperm(len(y), generator=gen).split(batch_size):
            b = b.to(device)
            out = net(x[b])
            loss = F.cross_entropy(out, y[b])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            wrong += (out.argmax(1) != y[b]).sum().item()
        history.append(dict(epoch=epoch, train_acc=1.0 - wrong / len(y), seconds=time.perf_counter() - t0))
    return history


def relu_vs_tanh(lab, seeds: int, epochs: int) -> dict:
    """Both activations per seed on that seed's training split, downsampled to 32x32 and standardised."""
    dec = lab.decoded()
    k = len(dec.classes)
    runs = {"relu": [], "tanh": []}
    t0 = time.perf_counter()
    for seed in range(seeds):
        tr, _ = lab.split(seed)
        x = F.interpolate(dec.images[tr].float().div_(255), size=(SMALL_SIZE, SMALL_SIZE), mode="bilinear",
                          antialias=True, align_corners=False)          # (N, 3, 256, 256) -> (N, 3, 32, 32)
        mean, std = x.mean((0, 2, 3), keepdim=True), x.std((0, 2, 3), keepdim=True)
        x = (x - mean) / std
        for act in runs:
            h = train_small(x, dec.labels[tr], act, seed, epochs, lab.device)
            runs[act].append(dict(history=h, epochs_to_target=epochs_to_error(h, SMALL_TARGET_ERROR, 1 - 1 / k)))
    return dict(runs=runs, seconds=time.perf_counter() - t0, target=SMALL_TARGET_ERROR, epochs=epochs,
                n_train=len(lab.split(0)[0]))
