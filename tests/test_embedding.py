"""viz.embedding: cached fc7 features, a seeded UMAP map, cosine neighbours, receptive-field patches.

Tiny models (paper arch, width 0.125) keep every pass to milliseconds; the UMAP tests
share one module-scoped fit, because the first fit pays numba's JIT (~10 s on 2 cores).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from alexnet import features as F
from alexnet.images import center_crop, normalize
from alexnet.weights import cache_dir
from alexnet.model import build
from viz import embedding as E

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
SIZE = 99


def tiny(arch="paper", seed=0):
    torch.manual_seed(seed)
    return build(arch, 3, width=0.125).eval()


def random_images(n=10, side=112, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), dtype=torch.uint8, generator=g)


class ForwardCounter:
    """Counts forward passes of a model, through a hook removed on exit."""

    def __init__(self, model):
        self.calls = 0
        self._h = model.register_forward_hook(lambda *a: setattr(self, "calls", self.calls + 1))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._h.remove()


# ---------------------------------------------------------------- features and their cache

def test_fc7_features_match_a_direct_forward_pass():
    model, imgs = tiny(), random_images(10)
    seen = []
    feats = E.fc7_features(model, imgs, MEAN, STD, SIZE, batch_size=4, cache=False,
                           progress=lambda done, total: seen.append((done, total)))
    assert feats.shape == (10, 512) and feats.dtype == np.float32   # 4096 * 0.125
    assert (feats >= 0).all()                                        # after fc7's ReLU
    assert seen == [(4, 10), (8, 10), (10, 10)]
    with torch.inference_mode():
        _, acts = model(normalize(center_crop(imgs[:3], SIZE), MEAN, STD), return_activations=True)
    np.testing.assert_allclose(feats[:3], acts["fc7"].numpy(), rtol=1e-4, atol=1e-5)


def test_training_mode_is_restored():
    model = tiny().train()
    E.fc7_features(model, random_images(2), MEAN, STD, SIZE, cache=False)
    assert model.training


def test_too_small_images_are_refused():
    with pytest.raises(ValueError, match="smaller than"):
        E.fc7_features(tiny(), random_images(2, side=64), MEAN, STD, SIZE, cache=False)


def test_disk_cache_skips_the_model_and_follows_its_weights():
    model, imgs = tiny(), random_images(6)
    first = E.fc7_features(model, imgs, MEAN, STD, SIZE)
    with ForwardCounter(model) as c:
        again = E.fc7_features(model, imgs, MEAN, STD, SIZE)
    assert c.calls == 0
    np.testing.assert_array_equal(first, again)

    h = F.model_hash(model)
    with torch.no_grad():
        model.param_layer("fc7").weight.mul_(1.5)
    assert F.model_hash(model) != h
    with ForwardCounter(model) as c:
        changed = E.fc7_features(model, imgs, MEAN, STD, SIZE)
    assert c.calls > 0
    assert not np.allclose(first, changed)


def test_keys_and_bounded_cache(tmp_path):
    imgs = random_images(4)
    assert F.data_hash(imgs) == F.data_hash(imgs.clone())
    flipped = imgs.clone()
    flipped[0, 0, 0, 0] ^= 1
    assert F.data_hash(flipped) != F.data_hash(imgs)
    paths = []
    for i in range(2):
        p = tmp_path / f"{i}.jpg"
        p.write_bytes(b"x" * (i + 1))
        paths.append(p)
    assert F.data_hash(paths) != F.data_hash(paths[::-1])      # order is the rows' order
    assert F.model_hash(paths[0]) != F.model_hash(paths[1])     # a checkpoint path: its sha256
    assert F.store_key("fc7", "m", "d", MEAN, STD, 99) != F.store_key("fc7", "m", "d", MEAN, STD, 100)
    assert F.store_key("fc7", "m", "d", MEAN, STD, 99) != F.store_key("fc7", "m", "d", MEAN, STD, 99, ("centre", "mirror"))

    model = tiny()
    for seed in range(3):
        E.fc7_features(model, random_images(2, seed=seed), MEAN, STD, SIZE, keep=2)
    assert len(list((cache_dir() / F.FEATURES_DIR).glob("*.safetensors"))) == 2


# ---------------------------------------------------------------- the map

def clustered_features(n=60, d=64, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.random((classes, d)) * 3
    labels = np.arange(n) % classes
    feats = np.maximum(centres[labels] + rng.normal(size=(n, d)), 0).astype(np.float32)
    return feats, labels


FEATS, LABELS = clustered_features()


@pytest.fixture(scope="module")
def fitted():
    return E.fit_map(FEATS, LABELS, ["a", "b", "c"], seed=0)


def test_map_is_deterministic_with_a_seed(fitted):
    again = E.fit_map(FEATS, fitted.labels, fitted.classes, seed=0)
    assert fitted.coords.shape == (60, 2)
    np.testing.assert_array_equal(fitted.coords, again.coords)


def test_place_puts_a_training_point_near_itself(fitted):
    c = fitted.coords
    spread = np.linalg.norm(c.max(0) - c.min(0))
    for i in (0, 31):
        p = E.place(fitted, FEATS[i])
        assert p.shape == (2,)
        assert np.linalg.norm(p - c[i]) < 0.1 * spread
    with pytest.raises(ValueError, match="same model"):
        E.place(fitted, np.ones(7, dtype=np.float32))


def test_umaps_compiled_code_is_cached_on_disk_for_the_next_process(fitted):
    """umap-learn does not cache its numba functions; import_umap turns that on, in the project's cache."""
    from numba.core.dispatcher import Dispatcher
    umap = E.import_umap()
    jitted = [f for f in vars(umap.umap_).values() if isinstance(f, Dispatcher)]
    assert jitted and all(type(f._cache).__name__ != "NullCache" for f in jitted)
    folder = cache_dir() / "numba"
    assert any(folder.rglob("*.nbi")), "a fitted map left no compiled-code index in the cache folder"


def test_map_cache_fits_once_and_stays_bounded(fitted):
    cache = E.MapCache(maxsize=1)
    m1 = cache.get_or_fit(FEATS, fitted.labels, fitted.classes, key="k1")
    assert cache.get_or_fit(FEATS, fitted.labels, fitted.classes, key="k1") is m1
    cache.get_or_fit(FEATS[:30], fitted.labels[:30], fitted.classes, key="k2")
    assert cache.get_or_fit(FEATS, fitted.labels, fitted.classes, key="k1") is not m1


def test_scatter_draws_something(fitted):
    img = E.scatter(fitted, star=E.place(fitted, FEATS[0]), title="test")
    a = np.asarray(img)
    assert isinstance(img, Image.Image) and a.shape[0] > 100 and a.shape[1] > 100
    assert (a < 250).any(axis=2).mean() > 0.01                         # not blank
    assert len(np.unique(a.reshape(-1, 3), axis=0)) > 20               # several class colours


# ---------------------------------------------------------------- neighbours

def test_neighbours_find_the_query_itself_first():
    imgs = random_images(12)
    feats = E.fc7_features(tiny(), imgs, MEAN, STD, SIZE, cache=False)
    nn_ = E.neighbours(feats, feats[5], k=4)
    assert nn_[0][0] == 5 and nn_[0][1] == pytest.approx(1.0, abs=1e-5)
    sims = [s for _, s in nn_]
    assert sims == sorted(sims, reverse=True) and len(nn_) == 4
    assert 5 not in [i for i, _ in E.neighbours(feats, feats[5], k=4, exclude=5)]
    gallery = E.neighbour_gallery(imgs, nn_, labels=torch.arange(12) % 3, classes=["a", "b", "c"], size=32)
    assert len(gallery) == 4 and gallery[0][0].size == (32, 32)
    assert gallery[0][1].startswith("#5 · c · cos 1.000")


# ---------------------------------------------------------------- receptive fields and patches

def positive_model(arch="paper", size_pool_avg=False, seed=0) -> nn.Module:
    """Every conv weight equal and positive, biases zero: a unit fires where its field is bright."""
    model = tiny(arch, seed)
    with torch.no_grad():
        for m in model.features:
            if isinstance(m, nn.Conv2d):
                m.weight.fill_(1.0 / m.weight[0].numel())
                m.bias.zero_()
    if size_pool_avg:  # max-pool sends gradient to one pixel per window; avg-pool shows the whole field
        for i, m in enumerate(model.features):
            if isinstance(m, nn.MaxPool2d):
                model.features[i] = nn.AvgPool2d(m.kernel_size, m.stride)
    return model


@pytest.mark.parametrize("arch,size", [("paper", 99), ("torchvision", 120)])
@pytest.mark.parametrize("layer", ["conv2", "conv5"])
def test_geometry_is_the_input_gradient_support(arch, size, layer):
    model = positive_model(arch, size_pool_avg=True)
    geo = E.receptive_geometry(model, layer, size)
    for y, x in [(0, 0), (geo.size // 2, geo.size - 1)]:
        inp = (torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(1)) + 0.1).requires_grad_()
        _, acts = model(inp, return_activations=True)
        acts[layer][0, 0, y, x].backward()
        rows, cols = np.nonzero(inp.grad[0].abs().sum(0).numpy())
        assert (cols.min(), rows.min(), cols.max() + 1, rows.max() + 1) == geo.box(y, x)


def test_top_patches_find_a_planted_bright_spot():
    size, n = 227, 6
    imgs = torch.randint(0, 30, (n, 3, 240, 240), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    off = (240 - size) // 2                          # the centre crop's offset
    imgs[2, :, off + 20:off + 30, off + 180:off + 190] = 255   # bright spot: model-input rows 20-29, cols 180-189
    imgs[4, :, off + 100:off + 110, off + 100:off + 110] = 200  # a dimmer one elsewhere
    model = positive_model()
    out = E.top_patches(model, imgs, MEAN, STD, size, unit=0, k=3)
    geo = E.receptive_geometry(model, "conv5", size)
    assert out["patches"].shape == (3, geo.rf, geo.rf, 3) and out["rf"] == 163
    assert list(out["indices"][:2]) == [2, 4]
    assert out["values"][0] > out["values"][1] > 0
    for x0, y0, x1, y1 in out["boxes"]:
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        assert x1 - x0 == geo.rf or x0 == 0 or x1 == size   # the field, unless clipped at a border
        assert y1 - y0 == geo.rf or y0 == 0 or y1 == size
    x0, y0, x1, y1 = out["boxes"][0]
    assert x0 <= 180 and 190 <= x1 and y0 <= 20 and 30 <= y1
    # The spot sits in the patch where the field puts it: the patch's origin is the unclipped field corner.
    uy0, ux0 = geo.start + out["positions"][0] * geo.jump
    ys, xs = np.nonzero((out["patches"][0] == 255).all(axis=2))
    assert (ys.min() + uy0, xs.min() + ux0, ys.max() + uy0, xs.max() + ux0) == (20, 180, 29, 189)
    assert uy0 < 0 and (out["patches"][0, :-uy0] == 128).all()     # zero padding shown as the mean colour

    with ForwardCounter(model) as c:   # every unit's maxima were cached by the first call
        other = E.top_patches(model, imgs, MEAN, STD, size, unit=1, k=2)
    assert c.calls == 0 and other["patches"].shape[0] == 2
    with pytest.raises(ValueError, match="units 0.."):
        E.top_patches(model, imgs, MEAN, STD, size, unit=10_000)


def test_top_patches_equal_a_brute_force_argmax_on_random_images():
    """Every unit's ranking and positions agree with one plain forward pass and argmax per image."""
    size = 99
    model, imgs = tiny(seed=3), random_images(7, seed=5)
    with torch.inference_mode():
        _, acts = model(normalize(center_crop(imgs, size), MEAN, STD), return_activations=True)
    a = acts["conv5"]                                               # (7, C, h, w)
    flat = a.flatten(2)                                             # (7, C, h*w)
    for unit in (0, 5, a.shape[1] - 1):
        values, where = flat[:, unit].max(dim=1)                    # (7,) per image
        order = sorted(range(len(imgs)), key=lambda i: (-values[i].item(), i))[:4]
        out = E.top_patches(model, imgs, MEAN, STD, size, unit=unit, k=4, cache=False)
        assert out["indices"].tolist() == order
        np.testing.assert_allclose(out["values"], values[order].numpy(), rtol=1e-5)
        w = a.shape[-1]
        assert [tuple(p) for p in out["positions"]] == [divmod(int(where[i]), w) for i in order]
    gallery = E.patch_gallery(out, labels=[0, 1, 2, 0, 1, 2, 0], classes=["x", "y", "z"], size=48)
    assert len(gallery) == 4 and gallery[0][0].size == (48, 48)
    assert gallery[0][1].startswith(f"#{order[0]} · ")
