"""The project's checkpoint format: `<name>.safetensors` + `<name>.json`, both written atomically.

The sidecar (what `make_meta` builds) holds everything needed to rebuild, preprocess and label a
model, plus its metrics; its content is also embedded in the safetensors header, so weights and
their description can never be torn apart by a crash between two renames. No pickle anywhere.
Reading every other format, and the one `load()` for the app and the CLIs, is alexnet.weights'.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

from safetensors import safe_open
from safetensors.torch import save_file

from alexnet.errors import UserError
from alexnet.files import ASSETS, atomic_write_bytes, atomic_write_text, cache_dir
from alexnet.model import CONV_LAYERS, FC_LAYERS, AlexNet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Caffe fed BGR 0-255 minus the mean pixel (104, 117, 123); on RGB 0-1 inputs that is:
CAFFE_MEAN = (123 / 255, 117 / 255, 104 / 255)
CAFFE_STD = (1 / 255, 1 / 255, 1 / 255)
FORMAT = "alexnet-explainer/1"
COMPACT_FORMAT = "alexnet-explainer/compact-svd/1"   # the shipped model's layout (alexnet.compact)


class WeightsError(UserError):
    """A weights file that cannot be used; the message says which layer and why."""


def imagenet_classes() -> list[str]:
    """The 1000 ILSVRC-2012 class names in the order of both torchvision and BVLC outputs."""
    return (ASSETS / "imagenet_classes.txt").read_text().splitlines()


def make_meta(model: AlexNet, classes: list[str] | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
              source: str = "", **extra) -> dict:
    """The sidecar: everything needed to rebuild, preprocess and label, plus metrics."""
    spec = model.spec.to_dict()
    classes = list(classes) if classes is not None else [f"class {i}" for i in range(spec["num_classes"])]
    if len(classes) != spec["num_classes"]:
        raise WeightsError(f"{len(classes)} class names for a model with {spec['num_classes']} outputs")
    meta = dict(format=FORMAT, spec=spec, arch=spec["arch"], classes=classes, input_size=model.spec.input_size,
                mean=list(mean), std=list(std), metrics={}, split_seed=None, source=source,
                created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    meta.update(extra)
    return meta


def _stem(path) -> Path:
    """'runs/flowers-acc0.93(.safetensors)' -> 'runs/flowers-acc0.93': dots inside a name are kept."""
    path = Path(path)
    return path.with_suffix("") if path.suffix in (".safetensors", ".json") else path


def _with(stem: Path, ext: str) -> Path:
    return stem.with_name(stem.name + ext)   # not with_suffix: it would cut 'acc0.93' to 'acc0'


def _sweep_orphans(directory: Path, max_age_s: float = 3600.0) -> None:
    """Remove temp files of saves that were killed (older than an hour, so never a save in progress)."""
    import time
    for t in directory.glob(".*.tmp"):
        try:
            if time.time() - t.stat().st_mtime > max_age_s:
                t.unlink()
        except OSError:
            pass


def save_checkpoint(path, model: AlexNet, meta: dict) -> Path:
    """Write `<path>.safetensors` and `<path>.json` atomically; return the .safetensors path."""
    stem = _stem(path)
    weights = _with(stem, ".safetensors")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    header = {"alexnet_explainer": json.dumps(meta)}
    atomic_write_bytes(weights, lambda tmp: save_file(tensors, tmp, metadata=header))
    atomic_write_text(_with(stem, ".json"), json.dumps(meta, indent=2))
    _sweep_orphans(weights.parent)
    return weights


def read_meta(path) -> dict:
    """The checkpoint's metadata: from the safetensors header (written with the weights), else the sidecar."""
    stem = _stem(path)
    weights = _with(stem, ".safetensors")
    if not weights.exists():
        raise WeightsError(f"no checkpoint at {weights}")
    try:
        with safe_open(str(weights), framework="pt") as f:
            header = (f.metadata() or {}).get("alexnet_explainer")
    except Exception as e:  # safetensors raises its own error types for a damaged header
        raise WeightsError(f"{weights.name} is not a readable safetensors file ({e})") from e
    if header:
        return json.loads(header)
    sidecar = _with(stem, ".json")
    if not sidecar.exists():
        raise WeightsError(f"{weights.name} has no metadata and no {sidecar.name} sidecar: cannot tell its architecture")
    return json.loads(sidecar.read_text())


def list_checkpoints(directory=None) -> list[Path]:
    """Project checkpoints in `directory` (default: the cache's checkpoints/), newest first."""
    d = Path(directory) if directory else cache_dir() / "checkpoints"
    if not d.is_dir():
        return []
    return sorted(d.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)


def _layer_of(model: AlexNet, key: str) -> str:
    for name in CONV_LAYERS + FC_LAYERS:
        if key.startswith(model.param_key(name) + "."):
            return name
    return key


def load_state_dict_checked(model: AlexNet, state: dict, strict: bool = True) -> list[str]:
    """load_state_dict with messages that name the layer and both shapes; returns the keys loaded."""
    own = model.state_dict()
    for k, v in state.items():
        if k in own and tuple(own[k].shape) != tuple(v.shape):
            raise WeightsError(
                f"layer {_layer_of(model, k)} ({k}): the file has shape {tuple(v.shape)}, "
                f"this {model.spec.arch} model needs {tuple(own[k].shape)}")
    unexpected = sorted(set(state) - set(own))
    missing = sorted(set(own) - set(state))
    if strict and (unexpected or missing):
        raise WeightsError(
            f"the file does not fit the {model.spec.arch} architecture: "
            + (f"missing {', '.join(missing[:6])}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {', '.join(unexpected[:6])}" if unexpected else ""))
    model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
    return sorted(set(state) & set(own))
