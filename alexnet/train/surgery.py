"""The model a run trains: a fresh one from scratch, or a source model with a new fc8 and frozen layers.

Every random draw (scratch init, the new head) comes from the generator passed in, so a
run is reproducible from its seed and never touches torch's global RNG.
"""
from __future__ import annotations

import torch
from torch import nn

from alexnet import data as D
from alexnet import weights as W
from alexnet.bvlc import BVLC_SOURCE, init_conv1_from_bvlc
from alexnet.model import CONV_LAYERS, AlexNet, build, default_input_size, from_spec
from alexnet.shapes import spec_table

from .config import NEEDS_WEIGHTS, ConfigError, TrainConfig

FREEZE_ORDER = CONV_LAYERS + ("fc6", "fc7")


def new_head(model: AlexNet, generator: torch.Generator) -> None:
    """A fresh fc8, initialised as the paper did: N(0, 0.01) weights, zero biases."""
    fc8 = model.param_layer("fc8")
    nn.init.normal_(fc8.weight, 0.0, 0.01, generator=generator)
    nn.init.zeros_(fc8.bias)


def build_model(cfg: TrainConfig, classes: list[str], generator: torch.Generator,
                images: torch.Tensor | None = None, train_idx: torch.Tensor | None = None) -> tuple[AlexNet, dict]:
    """The model to train and what its sidecar needs: mean, std, input size, source."""
    k = len(classes)
    if cfg.scratch:
        model = build(cfg.arch, k, generator=generator, activation=cfg.activation, lrn=cfg.lrn,
                      pool=tuple(cfg.pool), dropout=cfg.dropout, groups=cfg.groups, width=cfg.width)
        if cfg.arch == "torchvision":
            mean, std = W.IMAGENET_MEAN, W.IMAGENET_STD
        else:  # the paper subtracted the training set's mean; its std keeps default inits well scaled
            stats = D.rgb_stats(images, train_idx)
            mean, std = [round(v, 4) for v in stats["mean"].tolist()], [round(v, 4) for v in stats["std"].tolist()]
        size = cfg.input_size or default_input_size(cfg.arch)
        check_size(model, size)
        source = "scratch"
        if cfg.init_conv1 == "bvlc":
            init_conv1_from_bvlc(model, mean, std)
            source = BVLC_SOURCE
        return model, dict(mean=mean, std=std, input_size=size, source=source)
    source = cfg.weights
    if source is None:
        if not W.imagenet_weights_path().exists():
            raise ConfigError(NEEDS_WEIGHTS)
        source = "imagenet"
    src, src_meta = W.load(source)
    spec = dict(src_meta["spec"], num_classes=k)
    model = from_spec(spec)
    fc8 = model.param_key("fc8") + "."
    W.load_state_dict_checked(model, {n: t for n, t in src.state_dict().items() if not n.startswith(fc8)}, strict=False)
    new_head(model, generator)
    size = cfg.input_size or src_meta.get("input_size") or default_input_size(spec["arch"])
    check_size(model, size)
    return model, dict(mean=src_meta["mean"], std=src_meta["std"], input_size=size, source=str(source))


def check_size(model: AlexNet, size: int) -> None:
    """alexnet.shapes says, in a sentence, which layer an input that small would empty."""
    try:
        spec_table(model.spec.to_dict(), size)
    except ValueError as e:
        raise ConfigError(f"--input-size {size}: {e}") from None


def split_frozen(model: AlexNet, freeze: str) -> tuple[nn.Module, nn.Module]:
    """(frozen trunk, trainable head) for a frozen prefix ending at conv5, fc6 or fc7.

    The trunk ends after the layer's ReLU (and pool5 + avgpool + flatten for conv5), so its
    output is exactly what the head's first module receives in the full model.
    """
    cut = 0 if freeze in CONV_LAYERS else [m is model.tap(freeze) for m in model.classifier].index(True) + 1
    trunk = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *model.classifier[:cut])
    head = nn.Sequential(*model.classifier[cut:])
    return trunk, head


def freeze(model: AlexNet, last: str) -> list[str]:
    """Turn off gradients for every layer up to and including `last`; returns the frozen layer names."""
    if last == "none":
        return []
    frozen = list(FREEZE_ORDER[:FREEZE_ORDER.index(last) + 1])
    for name in frozen:
        for p in model.param_layer(name).parameters():
            p.requires_grad_(False)
    return frozen


def frozen_layers(cfg: TrainConfig, model: AlexNet) -> list[str]:
    """Fine-tuning freezes up to --freeze; BVLC's conv1 stays as released, only the rest learns."""
    if not cfg.scratch:
        return freeze(model, cfg.freeze)
    return freeze(model, "conv1") if cfg.init_conv1 == "bvlc" else []


def trains_on_features(cfg: TrainConfig, device: torch.device) -> bool:
    """Fine-tuning with every conv frozen can train the head on cached trunk outputs (default: on a CPU)."""
    every_conv_frozen = cfg.freeze not in ("none",) + CONV_LAYERS[:-1]
    wanted = cfg.feature_cache if cfg.feature_cache is not None else device.type == "cpu"
    return not cfg.scratch and every_conv_frozen and wanted
