"""Device handling in one place: which device, which autocast dtype, which memory format."""
from __future__ import annotations

import contextlib

import torch
from torch import nn


def pick(device: str | torch.device | None = "auto") -> torch.device:
    """'auto' prefers cuda, then Apple's mps, then cpu; an explicit choice is checked, not guessed."""
    if isinstance(device, torch.device):
        return device
    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked for, but PyTorch sees no CUDA GPU here; use --device cpu or auto")
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps was asked for, but MPS is not available here; use --device cpu or auto")
    return torch.device(device)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 on cuda (no loss scaling needed); full fp32 elsewhere (CPU bf16 is slower on most CPUs)."""
    return torch.bfloat16 if device.type == "cuda" else None


def autocast(device: torch.device):
    """Mixed precision where it pays off, a no-op context elsewhere."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last lets cuDNN pick tensor-core kernels; on CPU the default layout is as fast."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def prepare(model: nn.Module, device: torch.device) -> nn.Module:
    """Move a model to `device` in the memory format that suits it."""
    return model.to(device=device, memory_format=memory_format(device))


def to_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move an image batch (B, 3, H, W) to `device` in the matching memory format."""
    return x.to(device=device, memory_format=memory_format(device), non_blocking=True)
