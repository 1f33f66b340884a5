"""Where a run's batches come from, chosen once per run.

- `ImageSource`: the decoded uint8 images resident on the device -> batched crop/flip
  (+ the paper's PCA lighting) -> the whole model. Every epoch may use its own input size.
- `FeatureSource` (CPU fine-tuning with every conv frozen): the frozen trunk runs once per
  image (the centre crop, and its mirror when `cfg.train_views` says so, through
  alexnet.features' one dataset pass and its store), then only the fc head trains on those
  vectors; a second run on the same model and data starts training at once.
Both give `train(order, size, gen)` and `val(rank, world)` iterators of (x, y) on the device.
"""
from __future__ import annotations

import time

import torch
from torch import nn

from alexnet import data as D
from alexnet import device as dev_
from alexnet import features as fstore
from alexnet.augment import random_resized_crop_flip


def image_batches(images, labels, order, size, batch_size, mean, std, train, gen=None, pca=None, pca_std=0.1,
                  crop="fixed"):
    """Yield (x, y) for `order`; train batches get crop + flip (+ PCA lighting), val the centre crop.

    crop='fixed': the paper's random size x size window of the 256 image; 'rrc': a random area
    and aspect ratio resampled to size x size (alexnet.augment).
    """
    mf = dev_.memory_format(images.device)
    for i in range(0, len(order), batch_size):
        b = order[i:i + batch_size]
        u = images[b]                                              # (B, 3, 256, 256) uint8
        if train and crop == "rrc":
            x = random_resized_crop_flip(u, size, gen)             # (B, 3, size, size) in 0-1
        elif train:
            x = D.random_crop_flip(u, size, gen).float().div_(255)  # (B, 3, size, size) in 0-1
        else:
            x = D.center_crop(u, size)
        if train and pca is not None:
            x = D.pca_lighting(x, pca["eigvals"], pca["eigvecs"], pca_std, gen)
        yield D.normalize(x, mean, std).contiguous(memory_format=mf), labels[b]


def feature_batches(feats, labels, order, batch_size, gen=None):
    """Yield (features, y); train features (N, V, D) pick one random view per image, val ones are (N, D)."""
    for i in range(0, len(order), batch_size):
        b = order[i:i + batch_size]
        f = feats[b]
        if f.dim() == 3:                                           # (B, V, D) -> (B, D)
            view = torch.randint(0, f.shape[1], (len(b),), generator=gen, device=f.device)
            f = f[torch.arange(len(b), device=f.device), view]
        yield f, labels[b]


class ImageSource:
    def __init__(self, model: nn.Module, decoded: D.Decoded, train_idx, val_idx, info: dict, device, cfg):
        self.net = model                                   # what trains: the whole model
        self.images = decoded.images.to(device)            # 720 MB for the flowers: fine in RAM or on a GPU
        self.labels = decoded.labels.to(device)
        self.train_idx, self.val_idx = train_idx.to(device), val_idx.to(device)
        self.mean, self.std, self.size = info["mean"], info["std"], int(info["input_size"])
        stats = D.rgb_stats(decoded.images, train_idx) if cfg.pca_aug else None
        self.pca = {k: v.to(device) for k, v in stats.items()} if stats else None
        self.pca_std, self.crop, self.batch_size = cfg.pca_std, cfg.crop, cfg.batch_size
        self.features_seconds, self.features_cached = 0.0, False

    def train(self, order, size: int, gen):
        return image_batches(self.images, self.labels, self.train_idx[order], size, self.batch_size, self.mean,
                             self.std, True, gen, self.pca, self.pca_std, crop=self.crop)

    def val(self, rank: int, world: int):
        return image_batches(self.images, self.labels, self.val_idx[rank::world], self.size, 256, self.mean,
                             self.std, False)


class FeatureSource:
    def __init__(self, trunk: nn.Module, head: nn.Module, decoded: D.Decoded, train_idx, val_idx, info: dict,
                 device, cfg, progress=None, model: nn.Module | None = None):
        self.net = head                                    # what trains: the fc layers after the frozen trunk
        self.batch_size = cfg.batch_size
        t0 = time.perf_counter()
        whole = len(train_idx) + len(val_idx) == len(decoded.labels) and decoded.key
        if model is not None and cfg.head_only and cfg.train_views == ("centre",) and whole:
            tr, va, self.features_cached = shared_fc7(model, decoded, train_idx, val_idx, info, device, progress)
        else:
            tr, va, self.features_cached = trunk_features(trunk, decoded, train_idx, val_idx, info, device, progress,
                                                          train_views=cfg.train_views)
        self.features_seconds = time.perf_counter() - t0
        self.feats_tr, self.feats_va = tr.to(device), va.to(device)
        labels = decoded.labels.to(device)
        self.y_tr, self.y_va = labels[train_idx.to(device)], labels[val_idx.to(device)]

    def train(self, order, size: int, gen):
        return feature_batches(self.feats_tr, self.y_tr, order, self.batch_size, gen)

    def val(self, rank: int, world: int):
        pos = torch.arange(len(self.feats_va), device=self.feats_va.device)
        return feature_batches(self.feats_va, self.y_va, pos[rank::world], 512)


def shared_fc7(model: nn.Module, decoded: D.Decoded, train_idx, val_idx, info: dict, device, progress=None):
    """fc7 of every image (centre crop) under alexnet.features.fc7_key, the very pass the Embeddings map
    stores: a fine-tune after the map was drawn (or a second one) reads it back. -> (train (N, D), val, hit)"""
    size, mean, std = int(info["input_size"]), info["mean"], info["std"]
    key = fstore.fc7_key(model, decoded.key, mean, std, size)
    arrays, hit = fstore.cached(key, len(decoded.labels), lambda: fstore.dataset_pass(
        model, decoded.images, size, mean, std, record=fstore.record_fc7, batch_size=128, device=device,
        progress=progress), progress=progress)
    fc7 = torch.from_numpy(arrays["fc7"])                  # (N, D) in the decoded folder's order
    return fc7[train_idx], fc7[val_idx], hit


def trunk_features(trunk: nn.Module, decoded: D.Decoded, train_idx, val_idx, info: dict, device, progress=None,
                   train_views=("centre", "mirror")):
    """Trunk outputs for train (N, V, D: the train views) and val (M, D: centre), and whether both came
    from the feature store. `progress(done, total)` counts images over both."""
    size, mean, std = int(info["input_size"]), info["mean"], info["std"]
    model_key = fstore.model_hash(trunk)
    total, out, hits = len(train_idx) + len(val_idx), [], []
    for idx, views, offset in ((train_idx, tuple(train_views), 0), (val_idx, ("centre",), len(train_idx))):
        if len(idx) == 0:
            out.append(None)
            continue
        step = (lambda done, _n, off=offset: progress(off + done, total)) if progress else None
        key = (fstore.store_key(f"trunk{len(trunk)}", model_key, f"{decoded.key}-{fstore.data_hash(idx)}", mean, std, size, views)
               if decoded.key else None)
        arrays, hit = fstore.cached(key, len(idx), lambda idx=idx, views=views, step=step: fstore.dataset_pass(
            trunk, decoded.images, size, mean, std, views=views, index=idx, batch_size=128, device=device,
            progress=step), progress=step)
        out.append(torch.from_numpy(arrays["out"]))
        hits.append(hit)
    tr, va = out
    if va is None:
        va = torch.zeros((0, tr.shape[-1]))
    return tr, va, all(hits)
