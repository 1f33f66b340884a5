"""viz.concepts and viz.concept_icons: which conv5 channels made a decision, shown as icons and patches.

Brute force on tiny random models (paper arch, width 1/4, 99 px input: conv5 is 64 x 5 x 5): the
relevance against finite differences in float64 (exact, as everything after conv5 is piecewise
linear), the dictionary against loops, the many-unit patches against viz.embedding.top_patches.
The shipped icons file is read, never rebuilt; a tiny model's icons are made with a few steps.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from alexnet.model import build
from viz import concept_icons as CI
from viz import concepts as C
from viz import embedding as E

from test_embedding import ForwardCounter, random_images   # tests/ is on sys.path (no __init__.py)

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
SIZE = 99


def tiny(seed=0, width=0.25):
    return build("paper", 4, width=width, generator=torch.Generator().manual_seed(seed)).eval()


def photo(seed=0, side=SIZE) -> torch.Tensor:
    return torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(seed))


def brute_relevance(model, x, target, eps=1e-4) -> np.ndarray:
    """d logit / d s_c at s = 1, where conv5's output channel c is multiplied by s_c: by central differences,
    one channel at a time. That derivative is sum_yx a_cyx * d logit / d a_cyx, the relevance's definition.
    conv5's output is computed once; the 2C perturbed copies go through the rest of the net as one batch."""
    model, x = model.double(), x.double()
    i = next(j for j, m in enumerate(model.features) if m is model.tap("conv5"))
    with torch.no_grad():
        a = model.features[:i + 1](x)                                     # (1, C, h, w) after the ReLU

        def rest(acts):                                                   # conv5's output -> logits
            return model.classifier(torch.flatten(model.avgpool(model.features[i + 1:](acts)), 1))
        assert torch.allclose(rest(a), model(x), rtol=0, atol=1e-12)      # the split is the whole net
        channels = a.shape[1]
        scale = torch.ones(2 * channels, channels, 1, 1, dtype=torch.float64)
        scale[torch.arange(channels), torch.arange(channels)] = 1 + eps
        scale[channels + torch.arange(channels), torch.arange(channels)] = 1 - eps
        logits = rest(a * scale)[:, target]                               # (2C,)
    return ((logits[:channels] - logits[channels:]) / (2 * eps)).numpy()


# ---------------------------------------------------------------- relevance

@pytest.mark.parametrize("seed,target", [(0, 0), (1, 3)])
def test_channel_relevance_equals_finite_differences_per_channel(seed, target):
    model, x = tiny(seed), photo(seed)
    model.train()                                                       # must come back in train mode
    fast32 = C.channel_relevance(model, x, target).double().numpy()
    assert model.training and all(p.grad is None for p in model.parameters())
    brute = brute_relevance(model.eval(), x, target)                     # the model is float64 from here
    fast64 = C.channel_relevance(model, x.double(), target).numpy()
    assert fast64.shape == (64,) and np.abs(brute).max() > 1e-4         # a real signal, not all zeros
    np.testing.assert_allclose(fast64, brute, rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(fast32, brute, rtol=1e-5, atol=1e-5 * np.abs(brute).max())
    k = 6
    expected = sorted(range(len(brute)), key=lambda c: -brute[c])[:k]
    top = C.top_channels(model, x.double(), target, k=k)
    assert [c for c, _ in top] == expected
    assert [r for _, r in top] == sorted((r for _, r in top), reverse=True)
    np.testing.assert_allclose([r for _, r in top], brute[expected], rtol=1e-7, atol=1e-12)


def test_maps_sum_to_the_relevance_and_heatmaps_are_their_positive_part_upsampled():
    model, x = tiny(), photo()
    shares = C.channel_shares(model, x, 1)
    assert shares.maps.shape == shares.activation.shape == (64, 5, 5)
    torch.testing.assert_close(shares.maps.sum(dim=(1, 2)), shares.relevance)
    c = C.top_channels(model, x, 1, k=1, shares=shares)[0][0]
    heat = C.channel_heatmap(shares, c, (SIZE, SIZE))
    assert heat.shape == (SIZE, SIZE) and (heat >= 0).all() and heat.max() > 0
    # a map with its negative part removed: where every position is negative the heatmap is zero
    worst = int(shares.relevance.argmin())
    if (shares.maps[worst] <= 0).all():
        assert float(C.channel_heatmap(shares, worst, (SIZE, SIZE)).abs().max()) == 0.0


# ---------------------------------------------------------------- semantic dictionary

def test_dictionary_is_the_argmax_channel_and_the_picture_draws_its_icon():
    g = torch.Generator().manual_seed(0)
    acts = torch.relu(torch.randn(1, 20, 13, 13, generator=g))
    acts[0, :, 2, 3] = 0                                                  # a silent position
    acts[0, :, 7, 7] = 0
    argmax, magnitude = C.semantic_dictionary(acts)
    assert argmax.shape == magnitude.shape == (13, 13)
    for y in range(13):
        for x in range(13):
            v = acts[0, :, y, x].tolist()
            assert magnitude[y, x] == max(v)
            if max(v) > 0:
                assert argmax[y, x] == v.index(max(v))
    icons = torch.nn.functional.avg_pool2d(
        torch.randint(0, 256, (20, 3, 32, 32), generator=g).float(), 3, 1, 1).round().to(torch.uint8)
    cell = 16
    pic = np.asarray(C.dictionary_picture(argmax, magnitude, icons, cell_px=cell), dtype=np.float64)
    assert pic.shape == (13 * cell, 13 * cell, 3)
    top = float(magnitude.max())
    for y in range(13):
        for x in range(13):
            block = pic[y * cell:(y + 1) * cell, x * cell:(x + 1) * cell]
            if magnitude[y, x] == 0:
                assert (block == 255).all()
                continue
            icon = Image.fromarray(icons[int(argmax[y, x])].permute(1, 2, 0).numpy())
            scaled = np.asarray(icon.resize((cell, cell), Image.BILINEAR), dtype=np.float64)
            a = float(magnitude[y, x]) / top
            np.testing.assert_allclose(block, (1 - a) * 255 + a * scaled, atol=0.5 + 1e-9)
            if a == 1.0:
                assert (block == scaled).all()                            # the strongest cell is the icon itself


# ---------------------------------------------------------------- patches

def test_top_patches_many_equals_top_patches_per_unit_in_one_pass():
    model, imgs = tiny(width=0.125), random_images(10)
    units = [0, 3, 17, 31]
    with ForwardCounter(model) as counter:
        many = C.top_patches_many(model, imgs, MEAN, STD, SIZE, units, k=4, batch_size=4, cache=False)
    assert counter.calls == 3                                             # ceil(10 / 4) batches, not 3 per unit
    assert sorted(many) == units
    for u in units:
        one = E.top_patches(model, imgs, MEAN, STD, SIZE, unit=u, k=4, batch_size=4, cache=False)
        for key in ("patches", "boxes", "values", "indices", "positions"):
            np.testing.assert_array_equal(many[u][key], one[key], err_msg=f"unit {u}: {key}")
        assert many[u]["rf"] == one["rf"] and many[u]["unit"] == u


def test_top_patches_many_reads_the_pass_top_patches_stored():
    model, imgs = tiny(width=0.125), random_images(6, seed=1)
    E.top_patches(model, imgs, MEAN, STD, SIZE, unit=0, k=3)             # stores the per-image max table
    with ForwardCounter(model) as counter:
        many = C.top_patches_many(model, imgs, MEAN, STD, SIZE, [1, 2], k=3)
    assert counter.calls == 0
    np.testing.assert_array_equal(many[2]["patches"], E.top_patches(model, imgs, MEAN, STD, SIZE, unit=2, k=3)["patches"])


def test_concept_strip_rows_are_the_top_channels_with_their_patches_and_icons():
    model, imgs, x = tiny(width=0.125), random_images(8, seed=2), photo(2)
    icons = torch.randint(0, 256, (32, 3, 16, 16), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    rows = C.concept_strip(model, x, 2, imgs, MEAN, STD, SIZE, icons=icons, k=3, patches=2, cache=False)
    assert [(r.channel, r.relevance) for r in rows] == C.top_channels(model, x, 2, k=3)
    for r in rows:
        assert r.heatmap.shape == (SIZE, SIZE) and (r.heatmap >= 0).all()
        assert r.overlay.size == (SIZE, SIZE) and r.patches.shape[0] == 2
        one = E.top_patches(model, imgs, MEAN, STD, SIZE, unit=r.channel, k=2, cache=False)
        np.testing.assert_array_equal(r.patches, one["patches"])
        np.testing.assert_array_equal(np.asarray(r.icon), icons[r.channel].permute(1, 2, 0).numpy())
    assert C.strip_picture(rows, "test").size[0] > 0


# ---------------------------------------------------------------- icons

@pytest.fixture(scope="module")
def shipped():
    model, meta = W.load(str(SHIPPED))
    return model, sha256_file(SHIPPED)


def test_the_shipped_icons_are_the_shipped_models_and_come_back_without_optimising(shipped, monkeypatch):
    model, sha = shipped
    found = CI.load_icons(CI.SHIPPED_ICONS)
    assert found is not None, "run `python -m viz.concept_icons_build`"
    icons, info = found
    assert icons.dtype == torch.uint8 and icons.shape == (CI.channels(model), 3, CI.SIZE, CI.SIZE) == (256, 3, 64, 64)
    side = json.loads(CI.SHIPPED_ICONS.with_suffix(".json").read_text())
    assert side["model_sha256"] == info["model_sha256"] == sha
    assert side["count"] == 256 and side["rebuild_command"] == "python -m viz.concept_icons_build"
    assert CI.SHIPPED_ICONS.stat().st_size < 1_500_000
    assert icons.float().std() > 20                                       # pictures, not grey starts

    def no(*a, **k):
        raise AssertionError("the shipped icons were optimised again")
    monkeypatch.setattr(CI, "make_icons", no)
    t0 = time.perf_counter()
    again = CI.icons_for(model, sha)
    assert time.perf_counter() - t0 < 1.0
    assert torch.equal(again, icons)


def test_a_new_models_icons_are_made_with_progress_cached_and_read_back(monkeypatch):
    model = tiny(width=0.125)                                             # conv5: 32 channels
    calls = []
    first = CI.icons_for(model, "ab" * 32, progress=lambda s, n: calls.append((s, n)), steps=8, size=48)
    assert first.shape == (32, 3, 48, 48) and first.dtype == torch.uint8
    assert calls[-1] == (8, 8) and len(calls) == 2
    assert CI.cached_icons_path("ab" * 32, 8, 48).is_file()
    monkeypatch.setattr(CI, "make_icons", lambda *a, **k: pytest.fail("not read from the cache"))
    assert torch.equal(CI.icons_for(model, "ab" * 32, steps=8, size=48), first)


def test_make_icons_is_reproducible_and_leaves_the_model_alone():
    model = tiny(width=0.125).train()
    before = [p.detach().clone() for p in model.parameters()]
    a, info = CI.make_icons(model, steps=6, size=48, generator=torch.Generator().manual_seed(3))
    assert model.training and all(torch.equal(p, q) for p, q in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())
    assert info["steps"] == 6 and len(info["start"]) == len(info["final"]) == len(a) == 32
    b, _ = CI.make_icons(model, steps=6, size=48, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_each_image_raises_its_own_channel(shipped):
    """A trained model (a random one's conv5 barely depends on the image); a few channels, few steps."""
    model, _ = shipped
    units = [0, 37, 101, 160, 255, 7]
    icons, info = CI.make_icons(model, steps=10, units=units)
    assert icons.shape == (6, 3, CI.SIZE, CI.SIZE)
    rise = np.array(info["final"]) - np.array(info["start"])
    assert (rise > 0).sum() >= 5 and rise.mean() > 0, rise


def test_a_cancelled_run_stops_and_is_not_cached():
    model = tiny(width=0.125)
    icons = CI.icons_for(model, "cd" * 32, cancel=lambda: True, steps=8, size=48)
    assert icons.shape == (32, 3, 48, 48)
    assert not CI.cached_icons_path("cd" * 32, 8, 48).exists()
