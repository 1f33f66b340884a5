"""Two models side by side (issue 24, item 4): the handler called without a browser, the trained flowers model
against the untrained one on a held-out rose; each column equals what the library gives for that model alone."""
from __future__ import annotations

import numpy as np
import pytest

from app.tab_compare import compare_models
from viz.attribution import explain
from viz.filters import filter_view

from conftest import held_out


@pytest.fixture(scope="module")
def rose():
    return held_out("roses")


def _column(out, i):
    return dict(zip(("top5", "map", "conv1", "fc7", "line"), out[5 * i:5 * i + 5]))


def test_trained_against_untrained_on_the_same_photo_and_class(built_page, rose):
    out = compare_models(built_page, rose, "flowers", "untrained", "saliency", "roses", "en", progress=lambda *a, **k: None)
    a, b = _column(out, 0), _column(out, 1)
    assert next(iter(a["top5"])) == "roses" and "explains **roses**" in a["line"]
    b_top1 = next(iter(b["top5"]))                               # the untrained net has ImageNet's 1,000 names
    assert f"explains its top-1, **{b_top1}**: this model has no class 'roses'" in b["line"]
    assert "untrained" in b["line"].lower() and "untrained" not in a["line"].lower()   # B's map is said to be noise
    for key, col, cls in (("flowers", a, "roses"), ("untrained", b, b_top1)):   # each column is that model's own
        loaded = built_page.registry.get(key)
        x, _ = loaded.prepare(rose)
        ref = explain(loaded.model, x, loaded.meta["classes"].index(cls), "saliency", meta=loaded.meta)
        np.testing.assert_array_equal(np.asarray(col["map"]), np.asarray(ref.overlay))
        grid = filter_view(loaded.model).grid
        assert np.asarray(col["conv1"]).shape == np.asarray(grid).shape
        np.testing.assert_array_equal(np.asarray(col["conv1"]), np.asarray(grid))
        assert col["fc7"].size[0] > 300                          # the photo placed on that model's own map
    assert not np.array_equal(np.asarray(a["conv1"]), np.asarray(b["conv1"]))          # two different networks
    assert abs(sum(a["top5"].values()) - 1) < 1e-3 and len(b["top5"]) == 5           # 5 flowers; 5 of 1,000


def test_a_class_one_model_lacks_falls_back_to_its_top1_and_says_so(built_page, rose):
    out = compare_models(built_page, rose, "flowers", "flowers", "gradcam", "goldfish", "zh-CN",
                         progress=lambda *a, **k: None)
    a = _column(out, 0)
    assert "没有 'goldfish' 这个类别" in a["line"] and "roses" in a["line"]
