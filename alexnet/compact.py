"""The compact flowers model shipped in assets/: fc6 and fc7 as truncated-SVD factors, fp16.

A trained paper AlexNet for 5 classes has 56.9 M parameters (228 MB in fp32); 54 M of them sit
in fc6 (9216 x 4096) and fc7 (4096 x 4096). Denton et al. (2014, "Exploiting Linear Structure
Within Convolutional Networks") compressed AlexNet's fully connected layers by keeping the
top singular directions of each weight matrix: W (out, in) ~ U_r (out, r) @ V_r (r, in). Stored
that way (and in fp16) the model fits in a few MB; at load the factors are multiplied back into
dense `nn.Linear` weights, so at run time it is exactly the paper's network.

This module is the file format (factor, expand, read, write). Building the shipped file (train,
choose the rank, evaluate, write the sidecar) is alexnet.compact_build's, run as this module:

    python -m alexnet.compact --weights RUN-last.safetensors --out assets/flowers_alexnet
    python -m alexnet.compact --train --out assets/flowers_alexnet      # train + compress + evaluate, one command
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from alexnet.checkpoint import COMPACT_FORMAT, load_state_dict_checked
from alexnet.files import ASSETS, atomic_write_bytes, atomic_write_text
from alexnet.model import AlexNet, from_spec

FACTORED = ("fc6", "fc7")
SHIPPED = ASSETS / "flowers_alexnet.safetensors"
BUDGET_BYTES = 12_000_000                      # weights + sidecar, the repository's limit for a shipped model


# ---------------------------------------------------------------- factor and expand

def svd(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The thin SVD of W (out, in): u (out, k), s (k,), vh (k, in). Computed once per layer, then truncated."""
    return torch.linalg.svd(weight.detach().float().cpu(), full_matrices=False)


def truncate(u: torch.Tensor, s: torch.Tensor, vh: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """U (out, r), V (r, in) with U @ V the best rank-r approximation of u diag(s) vh (Eckart-Young).

    The singular values are split evenly (sqrt into each side), so both factors have similar
    ranges, which is what fp16 storage wants.
    """
    r = min(rank, len(s))
    root = s[:r].sqrt()
    return u[:, :r] * root, root[:, None] * vh[:r]                            # (out, r), (r, in)


class Factored:
    """A trained model with its fc6/fc7 SVDs computed once (a 9216 x 4096 SVD takes seconds on a CPU)."""

    def __init__(self, model: AlexNet):
        self.model = model
        self.svds = {model.param_key(n) + ".weight": svd(model.param_layer(n).weight) for n in FACTORED}

    def tensors(self, rank: int) -> dict[str, torch.Tensor]:
        """The state dict in fp16, fc6/fc7 weights replaced by '<key>.weight.u' / '.weight.v' factors."""
        out = {}
        for k, v in self.model.state_dict().items():
            if k in self.svds:
                u, vv = truncate(*self.svds[k], rank)
                out[k + ".u"], out[k + ".v"] = u.half().contiguous(), vv.half().contiguous()
            else:
                out[k] = v.detach().cpu().half().contiguous()
        return out

    def at_rank(self, rank: int) -> AlexNet:
        """A copy of the model whose weights are exactly what a compact file at `rank` expands to."""
        copy = from_spec(self.model.spec.to_dict())
        copy.load_state_dict(expand_tensors(self.tensors(rank)))
        return copy.eval()


def expand_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`Factored.tensors` output -> a dense fp32 state dict that `AlexNet.load_state_dict` takes."""
    state = {}
    for k, v in tensors.items():
        if k.endswith(".weight.u"):
            base = k[:-2]
            state[base] = v.float() @ tensors[base + ".v"].float()         # (out, r) @ (r, in) -> (out, in)
        elif not k.endswith(".weight.v"):
            state[k] = v.float()
    return state


def is_compact(meta: dict) -> bool:
    return meta.get("format") == COMPACT_FORMAT


def load_compact(path) -> tuple[AlexNet, dict]:
    """Read a compact file (no pickle) and expand it into the dense paper network."""
    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})["alexnet_explainer"])
    model = from_spec(meta["spec"])
    load_state_dict_checked(model, expand_tensors(load_file(str(path))))
    return model.eval(), meta


def save_compact(stem, model: "AlexNet | Factored", meta: dict, rank: int) -> Path:
    """Write `<stem>.safetensors` (factors, fp16, metadata in the header) and `<stem>.json`, atomically."""
    stem = Path(stem).with_suffix("") if Path(stem).suffix in (".safetensors", ".json") else Path(stem)
    path = stem.with_name(stem.name + ".safetensors")
    meta = dict(meta, format=COMPACT_FORMAT, svd=dict(meta.get("svd", {}), rank=rank, layers=list(FACTORED),
                                                       dtype="float16"))
    tensors = (model if isinstance(model, Factored) else Factored(model)).tensors(rank)
    atomic_write_bytes(path, lambda tmp: save_file(tensors, tmp, metadata={"alexnet_explainer": json.dumps(meta)}))
    atomic_write_text(stem.with_name(stem.name + ".json"), json.dumps(meta, indent=1))
    return path


def compact_bytes(model: AlexNet, rank: int) -> int:
    """Bytes of the tensors at `rank` (fp16), without writing anything."""
    n = 0
    for name in FACTORED:
        out_f, in_f = model.param_layer(name).weight.shape
        n += (out_f + in_f) * rank
    skip = {model.param_key(n) + ".weight" for n in FACTORED}
    n += sum(v.numel() for k, v in model.state_dict().items() if k not in skip)
    return 2 * n


if __name__ == "__main__":                     # the build command (it imports training and evaluation; this module does not)
    from alexnet.compact_build import main
    sys.exit(main())
