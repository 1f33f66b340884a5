"""The paper's tricks on one photo (issue 23, item 6): every number the views write is checked against the
network's own modules or an independent computation."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from alexnet.data import rgb_stats
from alexnet.model import build
from app.tab_tricks import paragraph
from viz import tricks

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)                                  # test-local weights; the library never seeds
    return build("paper", num_classes=5).eval()


@pytest.fixture(scope="module")
def x():
    return torch.randn(1, 3, 227, 227, generator=torch.Generator().manual_seed(3))


def test_relu_view_counts_what_relu_zeroes(model, x):
    t = tricks.activations(model, x)
    z = model.features[0](x)[0].detach()                  # conv1's Conv2d alone
    assert t.numbers["zeroed"] == pytest.approx(float((z <= 0).float().mean()), abs=1e-6)
    pos = z > 0
    assert t.numbers["tanh_gradient"] == pytest.approx(float((1 - torch.tanh(z[pos]) ** 2).mean()), rel=1e-5)
    assert f"{t.numbers['zeroed']:.0%}" in paragraph("en", t) and t.picture.size[0] > 500
    assert f"{t.numbers['zeroed']:.0%}" in paragraph("zh-CN", t) and "置为 0" in paragraph("zh-CN", t)


def test_lrn_view_writes_out_the_value_the_network_computes(model, x):
    t = tricks.lrn(model, x)
    n = t.numbers
    feeds_pool1 = tricks._pool_input(model, x)            # conv1 -> ReLU -> LRN, as the model runs it
    assert n["b"] == pytest.approx(float(feeds_pool1[n["channel"], n["y"], n["x"]]), rel=1e-4)
    assert n["b"] == pytest.approx(n["a"] / n["divisor"], rel=1e-6) and n["divisor"] >= 2 ** 0.75 - 1e-6
    assert f"b = {n['b']:.4g}" in paragraph("en", t) and f"b = {n['b']:.4g}" in paragraph("zh-CN", t)


def test_pooling_view_sides_and_shared_maxima():
    class Probe(torch.nn.Module):                        # a "model" whose pool1 reads one bright pixel
        def __init__(self):
            super().__init__()
            self.features = torch.nn.Sequential(torch.nn.Identity(), torch.nn.MaxPool2d(3, 2))

        def param_layer(self, name):
            return self.features[0]
    m = torch.zeros(1, 2, 9, 9)
    m[0, 0, 4, 4] = 5.0                                   # at an even position: the corner of four 3/2 windows
    m[0, 1] = torch.arange(81.0).view(9, 9)               # a ramp: every window's max is its own corner
    t = tricks.pooling(Probe(), m)
    assert (t.numbers["side_32"], t.numbers["side_22"]) == (4, 4)
    _, idx = F.max_pool2d(m, 3, 2, return_indices=True)
    expected = np.mean([1 - idx[0, c].unique().numel() / idx[0, c].numel() for c in range(2)])
    assert t.numbers["shared_32"] == pytest.approx(expected) and t.numbers["shared_32"] > 0
    assert t.numbers["shared_22"] == 0


def test_dropout_view_matches_the_network_and_its_generator(model, x):
    with torch.no_grad():
        clean = model(x).softmax(1)[0]
    t = tricks.dropout(model, x, CLASSES, torch.Generator().manual_seed(0))
    probs = torch.tensor(t.numbers["probs"])
    assert torch.allclose(probs[0], clean, atol=1e-5)     # row 0: every unit, as at test time
    assert all(1500 < k < 2600 for k in t.numbers["kept"])   # about half of 4,096 kept each draw
    again = tricks.dropout(model, x, CLASSES, torch.Generator().manual_seed(0))
    assert again.numbers["probs"] == t.numbers["probs"]    # the draws come from the generator alone
    none = tricks.dropout(model, x, CLASSES, torch.Generator().manual_seed(0), p=0.0)
    assert none.numbers["agree"] == 10 and torch.allclose(torch.tensor(none.numbers["probs"])[1:], clean, atol=1e-5)
    assert f"{t.numbers['agree']} of 10 draws" in paragraph("en", t)


def test_augmentation_crops_flips_and_shifts_colour_only():
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8))
    stats = rgb_stats(torch.from_numpy(np.array(photo)).permute(2, 0, 1)[None].contiguous())
    t = tricks.augmentation(photo, 227, stats, torch.Generator().manual_seed(1), n=4, exaggerate=1.0)
    assert t.numbers["positions"] == 30 ** 2
    tiles = np.asarray(t.picture).astype(float)
    base = np.asarray(photo).astype(float)
    for k, ((y, x), flip) in enumerate(zip(t.numbers["crops"], t.numbers["flips"])):
        assert 0 <= y <= 29 and 0 <= x <= 29
        region = base[y:y + 227, x:x + 227][:, ::-1] if flip else base[y:y + 227, x:x + 227]
        x0 = 4 + k * (227 + 4)                            # image_grid: pad 4 between tiles
        tile = tiles[4:4 + 227, x0:x0 + 227]
        diff = (tile - region)[20:-20, 20:-20]            # lighting: one shift per channel (clipped at 0 and 255)
        inside = (region[20:-20, 20:-20] > 30).all(-1) & (region[20:-20, 20:-20] < 225).all(-1)
        assert np.abs(diff[inside] - np.median(diff[inside], 0)).max() <= 1.5, k
    same = tricks.augmentation(photo, 227, stats, torch.Generator().manual_seed(1), n=4, exaggerate=1.0)
    assert np.array_equal(np.asarray(same.picture), np.asarray(t.picture))


def test_the_tab_shows_all_five_with_the_reports_verdicts(tmp_path):
    from app.examples import flower_examples
    from app.page import build_app
    from app.reports import read_report
    from app.tab_tricks import REPORT_KEY, show_all
    demo = build_app(checkpoints_dir=str(tmp_path / "ckpt"))
    page = demo.page
    key = page.registry.choices()[0][1]
    photo = next(e.path for e in flower_examples() if e.label == "roses")
    out = show_all(page, photo, key, draw=0)
    assert len(out) == 2 * len(tricks.TRICKS)
    claims = read_report()[1]["claims"]
    for i, name in enumerate(tricks.TRICKS):
        picture, text = out[2 * i], out[2 * i + 1]
        assert isinstance(picture, Image.Image) and np.asarray(picture).std() > 5
        assert claims[REPORT_KEY[name]]["project"] in text
    assert "top-1 stays **roses**" in out[7]              # the shipped model on a held-out rose, under dropout
    zh = show_all(page, photo, key, draw=0, lang="zh-CN")
    assert "保持为 **roses**" in zh[7] and "本项目报告的实测结果" in zh[1]
    assert [np.asarray(p).tolist() == np.asarray(q).tolist() for p, q in zip(out[::2], zh[::2])] == [True] * 5
