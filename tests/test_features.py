"""alexnet.features: the one dataset pass (views, index, modes) and the one bounded on-disk store; alexnet.lru."""
from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from alexnet import features as F
from alexnet.images import center_crop, normalize, ten_crop
from alexnet.lru import LRU
from alexnet.weights import cache_dir

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


class LeftMinusRight(nn.Module):
    """Output: mean of the left half minus mean of the right half, per channel; flips change its sign."""

    def forward(self, x):
        w = x.shape[-1] // 2
        return x[..., :w].mean((-2, -1)) - x[..., -w:].mean((-2, -1))          # (B, 3)


def images(n=5, side=12, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, side, side), generator=g, dtype=torch.uint8)


def test_centre_and_mirror_views_stack_per_image_and_match_a_direct_call():
    u = images()
    out = F.dataset_pass(LeftMinusRight(), u, 8, MEAN, STD, views=("centre", "mirror"), batch_size=2)["out"]
    assert out.shape == (5, 2, 3) and out.dtype == np.float32                 # (N, V, D)
    direct = LeftMinusRight()(normalize(center_crop(u, 8), MEAN, STD)).numpy()
    np.testing.assert_allclose(out[:, 0], direct, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1], -direct, rtol=1e-5, atol=1e-6)     # the mirror view flips the sign


def test_ten_views_are_the_papers_ten_crops_and_index_picks_rows():
    u = images(6)
    idx = torch.tensor([4, 1])
    out = F.dataset_pass(LeftMinusRight(), u, 8, MEAN, STD, views=("ten",), index=idx)["out"]
    assert out.shape == (2, 10, 3)
    crops = ten_crop(normalize(u[idx], MEAN, STD), 8)                         # (10, 2, 3, 8, 8)
    want = torch.stack([LeftMinusRight()(c) for c in crops], 1).numpy()       # (2, 10, 3)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)


def test_mode_is_restored_and_bad_input_is_named():
    m = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 2)).train()
    F.dataset_pass(m, images(2), 8, MEAN, STD)
    assert m.training
    with pytest.raises(ValueError, match="smaller than"):
        F.dataset_pass(m, images(2, side=6), 8, MEAN, STD)
    with pytest.raises(ValueError, match="uint8"):
        F.dataset_pass(m, images(2).float(), 8, MEAN, STD)
    with pytest.raises(ValueError, match="unknown view"):
        F.dataset_pass(m, images(2), 8, MEAN, STD, views=("sideways",))


def test_store_round_trips_skips_damaged_files_and_evicts_by_count_and_bytes():
    a = {"x": np.arange(12, dtype=np.float32).reshape(4, 3), "i": np.arange(4, dtype=np.int32)}
    calls = []
    first, hit = F.cached("k1", 4, lambda: calls.append(1) or a)
    again, hit2 = F.cached("k1", 4, lambda: calls.append(1) or a)
    assert (hit, hit2, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(again["x"], a["x"]) and np.testing.assert_array_equal(again["i"], a["i"])
    assert F.load("k1", n=5) is None                                         # wrong row count: not trusted
    path = cache_dir() / F.FEATURES_DIR / "k1.safetensors"
    path.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="damaged"):
        assert F.load("k1") is None
    assert not path.exists()
    for i in range(4):
        F.save(f"c{i}", a, keep=2)
    assert sorted(p.stem for p in (cache_dir() / F.FEATURES_DIR).glob("*.safetensors")) == ["c2", "c3"]
    F.save("big", a, keep=8, max_bytes=1)                                    # over the byte bound: only the newest stays
    assert [p.stem for p in (cache_dir() / F.FEATURES_DIR).glob("*.safetensors")] == ["big"]


def test_lru_evicts_the_least_recently_used_and_makes_once_under_concurrency():
    c = LRU(2)
    c.put("a", 1), c.put("b", 2)
    assert c.get("a") == 1                    # a is now the most recent
    c.put("c", 3)
    assert "b" not in c and c.get("a") == 1 and c.get("c") == 3
    made = []

    def make():
        made.append(1)
        return 42
    threads = [threading.Thread(target=lambda: c.get_or_make("x", make)) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert made == [1] and c.get("x") == 42 and len(c) == 2
    c.pop_where(lambda k: k in ("x", "c"))
    assert len(c) == 0 or list(k for k in ("x", "c") if k in c) == []
    with pytest.raises(ValueError):
        LRU(0)
