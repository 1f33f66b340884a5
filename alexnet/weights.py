"""Every weights format a user will bring, read without running anyone's pickled code.

- torchvision IMAGENET1K_V1: torchvision's own weights API and cache, or a local .pth
  read with `torch.load(weights_only=True)`.
- Caffe/BVLC arrays into the paper model: the common `bvlc_alexnet.npy` (a dict
  layer -> [weight, bias], HWIO, BGR input channels) and `.npz` files in OIHW/RGB
  (the layout of assets/bvlc_alexnet_conv1.npz). Partial files load what they have.
- Project checkpoints (alexnet.checkpoint's format), the compact shipped model (alexnet.compact).

`load(source)` is the one door the app and the CLIs use. The names of alexnet.checkpoint and
alexnet.files are re-exported here (`W.read_meta`, `W.cache_dir`) for callers above this module;
modules below it (download, data, features, pack, compact) import those two leaves directly.
"""
from __future__ import annotations

import os
import pickle
import warnings
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn

from alexnet.checkpoint import (  # noqa: F401  (re-exported: W.read_meta and friends are the public names)
    CAFFE_MEAN, CAFFE_STD, COMPACT_FORMAT, FORMAT, IMAGENET_MEAN, IMAGENET_STD, WeightsError, _layer_of, _stem, _with,
    imagenet_classes, list_checkpoints, load_state_dict_checked, make_meta, read_meta, save_checkpoint)
from alexnet.compact import load_compact
from alexnet.download import DownloadError, download
from alexnet.files import ASSETS, atomic_write_bytes, atomic_write_text, cache_dir  # noqa: F401  (re-exported)
from alexnet.model import CONV_LAYERS, FC_LAYERS, AlexNet, build, from_spec


def load_checkpoint(path, device: str | torch.device = "cpu") -> tuple[AlexNet, dict]:
    """Rebuild the model its metadata describes and load its weights (no pickle involved)."""
    meta = read_meta(path)
    if meta.get("format") == COMPACT_FORMAT:            # fc6/fc7 as SVD factors (alexnet.compact)
        model, meta = load_compact(_with(_stem(path), ".safetensors"))
        return model.to(device), meta
    model = from_spec(meta["spec"])
    state = load_file(str(_with(_stem(path), ".safetensors")), device="cpu")
    load_state_dict_checked(model, state)
    return model.to(device).eval(), meta


def safe_torch_load(path) -> dict:
    """Read a .pth without executing code: tensors and containers only."""
    try:
        with warnings.catch_warnings():   # torch warns about pickle protocols before refusing; the refusal says it all
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise WeightsError(f"refused {Path(path).name}: it contains pickled code or objects that are not plain "
                           f"tensors, and loading it could run that code") from e
    except (RuntimeError, EOFError, OSError) as e:
        raise WeightsError(f"{Path(path).name} is not a readable PyTorch file ({e})") from e
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{Path(path).name} holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ---------------------------------------------------------------- torchvision ImageNet weights

def _tv_weights():
    from torchvision.models import AlexNet_Weights
    return AlexNet_Weights.IMAGENET1K_V1


def imagenet_weights_path() -> Path:
    """Where torchvision's hub cache keeps the IMAGENET1K_V1 file (may not exist yet)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(_tv_weights().url).name


def imagenet_url() -> str:
    """torchvision's URL, or $ALEXNET_IMAGENET_URL (a mirror, a file:// URL; tests use an unreachable one)."""
    return os.environ.get("ALEXNET_IMAGENET_URL") or _tv_weights().url


IMAGENET_OFFLINE = ("Could not download torchvision's ImageNet weights ({cause}). Pick the flowers model, or start "
                    "with --weights FILE.")


def download_imagenet(report=None, bar: bool = True) -> Path:
    """Put torchvision's ImageNet AlexNet (233 MB) into its hub cache unless it is there; returns the path.

    `report(done_bytes, total_bytes)` follows the download. When it cannot happen this raises
    WeightsError with one sentence naming the cause and the way out (IMAGENET_OFFLINE). The file
    name carries the first hex digits of its SHA-256 (torchvision's convention): checked.
    """
    path = imagenet_weights_path()
    if not path.exists():
        try:
            download(imagenet_url(), path, sha256_prefix=path.stem.rsplit("-", 1)[-1], report=report, bar=bar)
        except DownloadError as e:
            raise WeightsError(IMAGENET_OFFLINE.format(cause=e.cause)) from e
    return path


def load_torchvision_imagenet(path=None, progress: bool = True) -> tuple[AlexNet, dict]:
    """torchvision's ImageNet AlexNet: from a local .pth, else its cache, else a download (233 MB)."""
    w = _tv_weights()
    model = build("torchvision", num_classes=1000)
    state = safe_torch_load(path if path is not None else download_imagenet(bar=progress))
    load_state_dict_checked(model, state)
    meta = make_meta(model, w.meta["categories"], IMAGENET_MEAN, IMAGENET_STD,
                     source=str(path) if path else "torchvision IMAGENET1K_V1",
                     metrics={"imagenet_top1": w.meta["_metrics"]["ImageNet-1K"]["acc@1"],
                              "imagenet_top5": w.meta["_metrics"]["ImageNet-1K"]["acc@5"]})
    return model.eval(), meta


# ---------------------------------------------------------------- Caffe / BVLC arrays

_NUMPY_PICKLE_OK = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
}


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts/lists of numpy arrays and refuses every other callable."""

    def find_class(self, module, name):
        if (module, name) in _NUMPY_PICKLE_OK:
            return super().find_class(module, name)
        raise WeightsError(f"refused: the file asks to call {module}.{name}; only numpy arrays are accepted")


def read_npy_dict(path) -> dict:
    """A `bvlc_alexnet.npy`-style object array (a pickled dict) without trusting its pickle."""
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
        except ValueError as e:
            raise WeightsError(f"{Path(path).name} is not a .npy file") from e
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        _, _, dtype = read_header(f)
        if not dtype.hasobject:
            raise WeightsError(f"{Path(path).name} holds one plain array, not a dict of layers")
        try:
            obj = _ArraysOnlyUnpickler(f, encoding="latin1").load()
        except WeightsError:
            raise
        except Exception as e:
            raise WeightsError(f"{Path(path).name} could not be read as a dict of arrays ({e})") from e
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise WeightsError(f"{Path(path).name} holds a {type(obj).__name__}, not a dict layer -> [weight, bias]")
    return obj


def _caffe_arrays(path) -> tuple[dict, str]:
    """layer -> (weight, bias or None) and the layout ('hwio_bgr' or 'oihw_rgb')."""
    path = Path(path)
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as z:
            keys = set(z.files)
            if keys >= {"weight"}:   # a single layer file, as assets/bvlc_alexnet_conv1.npz
                return {"conv1": (z["weight"], z["bias"] if "bias" in keys else None)}, "oihw_rgb"
            layers = {}
            for k in keys:
                for sep in (".", "_", "/"):
                    if sep in k:
                        layer, part = k.split(sep, 1)
                        if part in ("weight", "bias", "W", "b", "weights", "biases"):
                            w, b = layers.get(layer, (None, None))
                            if part in ("weight", "W", "weights"):
                                w = z[k]
                            else:
                                b = z[k]
                            layers[layer] = (w, b)
                        break
            return layers, "oihw_rgb"
    if path.suffix == ".npy":
        d = read_npy_dict(path)
        return {k: (np.asarray(v[0]), np.asarray(v[1]) if len(v) > 1 else None) for k, v in d.items()}, "hwio_bgr"
    raise WeightsError(f"{path.name}: Caffe arrays must be .npy (bvlc_alexnet.npy layout) or .npz")


def caffe_layers(path) -> list[str]:
    """The layer names a Caffe/BVLC arrays file holds (to tell a partial file before loading it)."""
    return list(_caffe_arrays(path)[0])


def load_caffe(path, model: AlexNet | None = None) -> tuple[AlexNet, dict]:
    """BVLC/Caffe arrays into the paper model; returns (model, report with loaded/missing layers)."""
    model = model if model is not None else build("paper", num_classes=1000)
    layers, layout = _caffe_arrays(path)
    unknown = sorted(set(layers) - set(CONV_LAYERS + FC_LAYERS))
    if unknown:
        raise WeightsError(f"{Path(path).name}: unknown layer(s) {', '.join(unknown)}; expected conv1..conv5, fc6..fc8")
    state = {}
    for name, (w, b) in layers.items():
        w = np.asarray(w, dtype=np.float32)
        if layout == "hwio_bgr":
            if w.ndim == 4:
                w = w.transpose(3, 2, 0, 1)   # (H, W, I, O) -> (O, I, H, W)
            elif w.ndim == 2:
                w = w.T                       # (in, out) -> (out, in)
        if name == "conv1" and layout == "hwio_bgr":
            w = w[:, ::-1]                    # BGR input channels -> RGB
        key = model.param_key(name)
        state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(w))
        if b is not None:
            state[f"{key}.bias"] = torch.from_numpy(np.asarray(b, dtype=np.float32).reshape(-1))
    loaded = load_state_dict_checked(model, state, strict=False)
    done = sorted({_layer_of(model, k) for k in loaded}, key=(CONV_LAYERS + FC_LAYERS).index)
    missing = [n for n in CONV_LAYERS + FC_LAYERS if n not in done]
    report = dict(loaded=done, missing=missing, layout=layout, partial=bool(missing))
    return model.eval(), report


def caffe_meta(model: AlexNet, path) -> dict:
    return make_meta(model, imagenet_classes() if model.spec.num_classes == 1000 else None,
                     CAFFE_MEAN, CAFFE_STD, source=f"BVLC/Caffe arrays {Path(path).name}")


# ---------------------------------------------------------------- one door for the app and CLIs

def load(source: str | os.PathLike, progress: bool = True) -> tuple[nn.Module, dict]:
    """'imagenet', a .safetensors checkpoint, a torchvision .pth, or Caffe .npy/.npz -> (model, meta)."""
    if str(source) == "imagenet":
        return load_torchvision_imagenet(progress=progress)
    path = Path(source).expanduser()
    if not path.exists():
        raise WeightsError(f"no weights file at {path}")
    if path.suffix in (".safetensors", ".json"):
        return load_checkpoint(path)
    if path.suffix in (".pth", ".pt"):
        return load_torchvision_imagenet(path)
    if path.suffix in (".npy", ".npz"):
        model, report = load_caffe(path)
        meta = caffe_meta(model, path)
        meta["load_report"] = report
        return model, meta
    raise WeightsError(f"{path.name}: unknown weights format; use .safetensors, .pth, .npy or .npz")
