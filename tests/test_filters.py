"""conv1 filter views: the colour score's meaning, the BVLC two-group split, labels that follow the scores."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import BVLC_CONV1

from alexnet.model import build
from alexnet.weights import load_caffe
from viz.filters import (AGNOSTIC, MIXED, NO_GROUPS, SPECIFIC, colour_score, compare, filter_response, filter_tiles,
                         filter_view, groups_of, split_auc)

KERNEL = 11


@pytest.fixture(scope="module")
def bvlc() -> torch.Tensor:
    with np.load(BVLC_CONV1) as z:
        return torch.from_numpy(z["weight"])   # (96, 3, 11, 11), filters 0-47 feed conv2 group 0


def _swap_halves(w: torch.Tensor) -> torch.Tensor:
    half = w.shape[0] // 2
    return torch.cat([w[half:], w[:half]])


def _not_blank(img) -> None:
    a = np.asarray(img)
    assert a.ndim == 3 and a.shape[2] == 3 and min(a.shape[:2]) > 100
    assert a.std() > 20 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50


def test_colour_score_means_share_of_energy_off_grey():
    space = torch.randn(KERNEL, KERNEL)
    grey = space.expand(3, -1, -1)                           # same pattern in R, G and B
    opponent = torch.stack([space, -space, torch.zeros_like(space)])   # red minus green, sums to grey 0
    red_only = torch.stack([space, torch.zeros_like(space), torch.zeros_like(space)])
    w = torch.stack([grey, opponent, red_only, 5 * opponent, -red_only, torch.zeros(3, KERNEL, KERNEL)])
    np.testing.assert_allclose(colour_score(w), [0, 1, 2 / 3, 1, 2 / 3, 0], atol=1e-9)


def test_colour_score_of_random_weights_is_near_two_thirds():
    torch.manual_seed(0)
    s = colour_score(torch.randn(96, 3, KERNEL, KERNEL))
    assert s.shape == (96,)
    assert abs(s.mean() - 2 / 3) < 0.02


def test_split_auc_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    s = np.round(rng.normal(size=60), 1)                     # rounding makes ties
    y = rng.random(60) < 0.4
    pos, neg = s[y], s[~y]
    brute = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert split_auc(s, y) == pytest.approx(brute)
    assert split_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0
    with pytest.raises(ValueError):
        split_auc([1, 2], [1, 1])


def test_bvlc_score_separates_the_two_halves(bvlc):
    scores = colour_score(bvlc)
    colour_half = np.arange(96) < 48
    auc = split_auc(scores, colour_half)
    assert auc >= 0.85
    assert auc < 1.0                                         # the halves genuinely overlap
    assert np.median(scores[colour_half]) > 0.8 > 0.1 > np.median(scores[~colour_half])


def test_labels_follow_the_scores_not_the_position(bvlc):
    view = filter_view(bvlc, groups=2)
    assert [g["label"] for g in view.groups] == [SPECIFIC, AGNOSTIC]
    assert [g["indices"].tolist() for g in view.groups] == [list(range(48)), list(range(48, 96))]
    assert view.groups[0]["auc"] == pytest.approx(split_auc(view.scores, np.arange(96) < 48))
    swapped = filter_view(_swap_halves(bvlc), groups=2)
    assert [g["label"] for g in swapped.groups] == [AGNOSTIC, SPECIFIC]
    np.testing.assert_allclose(swapped.groups[1]["scores"], view.groups[0]["scores"])


def test_model_groups_come_from_conv2(bvlc):
    model, report = load_caffe(BVLC_CONV1)
    assert report["loaded"] == ["conv1"]
    assert [g.tolist() for g in groups_of(model)] == [list(range(48)), list(range(48, 96))]
    assert [g["label"] for g in filter_view(model).groups] == [SPECIFIC, AGNOSTIC]
    with torch.no_grad():
        model.param_layer("conv1").weight.copy_(_swap_halves(bvlc))
    view = filter_view(model)
    assert [g["label"] for g in view.groups] == [AGNOSTIC, SPECIFIC]
    _not_blank(view.grid)
    _not_blank(view.histogram)


def test_tiny_models_split_by_their_conv2_groups():
    two = build("paper", 5, width=0.125)                      # conv1 has 12 filters
    assert [g.tolist() for g in groups_of(two)] == [list(range(6)), list(range(6, 12))]
    one = build("paper", 5, width=0.125, groups=1)
    assert [g.tolist() for g in groups_of(one)] == [list(range(12))]
    view = filter_view(one)
    assert [g["label"] for g in view.groups] == [NO_GROUPS]
    _not_blank(view.grid)


def test_random_weights_get_no_colour_names():
    torch.manual_seed(1)
    view = filter_view(torch.randn(96, 3, KERNEL, KERNEL), groups=2)
    assert [g["label"] for g in view.groups] == [MIXED, MIXED]


def test_filter_tiles_keep_zero_grey_and_use_the_full_range(bvlc):
    tiles = filter_tiles(bvlc)
    assert tiles.shape == (96, KERNEL, KERNEL, 3) and tiles.dtype == np.uint8
    peaks = np.abs(tiles.astype(int) - 127.5).reshape(96, -1).max(axis=1)   # (96, 11, 11, 3) -> (96, 363) -> (96,)
    assert (peaks == 127.5).all()                              # every filter reaches 0 or 255
    grey = torch.randn(KERNEL, KERNEL).expand(3, -1, -1)[None]
    t = filter_tiles(torch.cat([grey, torch.zeros(1, 3, KERNEL, KERNEL)]))
    assert (t[0, ..., 0] == t[0, ..., 1]).all() and (t[0, ..., 1] == t[0, ..., 2]).all()
    assert set(np.unique(t[1])) == {128}


def test_compare_reports_relative_change_and_score_shift(bvlc):
    after = bvlc.clone()
    after[5] *= 2                                              # twice as large: change 1, score unchanged
    after[7] = after[7].mean(0, keepdim=True).expand(3, -1, -1)   # made grey: its score drops to 0
    out = compare(bvlc, after)
    expected = np.zeros(96)
    expected[5] = 1.0
    expected[7] = (after[7] - bvlc[7]).norm() / bvlc[7].norm()
    np.testing.assert_allclose(out["change"], expected, rtol=1e-5, atol=1e-6)
    assert out["score_shift"] == pytest.approx(-colour_score(bvlc)[7] / 96)
    _not_blank(out["image"])
    same = compare(bvlc, bvlc)
    assert not same["change"].any() and same["score_shift"] == 0
    with pytest.raises(ValueError):
        compare(bvlc, bvlc[:48])


def test_filter_response_is_that_filters_map():
    torch.manual_seed(0)
    model = build("paper", 5, width=0.125).eval()
    x = torch.randn(1, 3, 99, 99)
    with torch.no_grad():
        _, acts = model(x, return_activations=True)
        conv = model.param_layer("conv1")
        i = 3
        expected = F.relu(F.conv2d(x, conv.weight[i:i + 1], conv.bias[i:i + 1], stride=conv.stride))[0, 0]
    got = filter_response(acts, i)
    assert got.shape == (23, 23)                               # (99 - 11) / 4 + 1
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(filter_response(acts["conv1"], i), got)
    with pytest.raises(IndexError):
        filter_response(acts, 12)
