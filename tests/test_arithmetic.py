"""viz.arithmetic: a unit's value written out as arithmetic equals the network's own activation (issue 23)."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.images import preprocess
from alexnet.model import LAYERS, build
from alexnet.pack import read_pack
from alexnet.shapes import layer_table
from viz.arithmetic import STEPS, network_value, trace, unit_arithmetic


@pytest.fixture(scope="module")
def shipped():
    model, meta = W.load(str(SHIPPED))
    pack = read_pack()
    photo = Image.open(io.BytesIO(pack.jpeg(0))).convert("RGB")           # a held-out flower, credited in the pack
    x = preprocess(photo, meta["input_size"], meta["mean"], meta["std"])  # (1, 3, 227, 227)
    with torch.no_grad():
        _, acts = model.eval()(x, return_activations=True)                # the model's own taps, its own path
    return model, trace(model, x), {k: v[0] for k, v in acts.items()}


# conv1, conv2 in its second group (reads channels 48-95 only), pool1, LRN at an edge channel and inside,
# conv5 (grouped too), the fc layers; positions away from and at the border (padding)
UNITS = [("conv1", 5, 20, 30), ("conv1", 95, 0, 54), ("lrn1", 0, 10, 10), ("lrn1", 50, 27, 3), ("pool1", 10, 5, 7),
         ("conv2", 200, 13, 13), ("conv2", 3, 0, 26), ("lrn2", 255, 4, 4), ("pool2", 7, 12, 0), ("conv3", 17, 6, 6),
         ("conv5", 100, 6, 6), ("conv5", 255, 12, 0), ("pool5", 1, 5, 5), ("fc6", 11, 0, 0), ("fc7", 4095, 0, 0),
         ("fc8", 2, 0, 0)]


@pytest.mark.parametrize("layer,channel,y,x", UNITS)
def test_the_displayed_value_equals_the_hooked_activation(shipped, layer, channel, y, x):
    model, steps, acts = shipped
    a = unit_arithmetic(model, steps, layer, channel, y, x)
    # the model's own activation (its forward with return_activations); LRN, untapped there, from its hook
    own = acts[layer] if layer in acts else steps[layer].output
    assert a.value == pytest.approx(float(own[channel] if own.dim() == 1 else own[channel, y, x]), rel=1e-4, abs=1e-4)
    assert a.value == pytest.approx(network_value(steps, layer, channel, y, x), rel=1e-4, abs=1e-4)
    if a.kind in ("conv", "fc"):
        assert sum(t[3] for t in a.terms) + a.rest + a.bias == pytest.approx(a.pre_activation, rel=1e-9, abs=1e-9)
        assert a.value == pytest.approx(max(a.pre_activation, 0.0) if layer != "fc8" else a.pre_activation, abs=1e-12)
        assert f"{a.n_terms:,} products" in a.sentence
    if a.kind == "pool":
        assert a.patch[a.winner] == a.value == a.patch.max()


def test_a_grouped_unit_reads_only_its_half_and_conv1_shows_its_kernel(shipped):
    model, steps, _ = shipped
    second = unit_arithmetic(model, steps, "conv2", 200, 13, 13)
    assert second.reads_channels == (48, 96) and "group 2 of 2" in second.sentence and second.n_terms == 48 * 25
    first = unit_arithmetic(model, steps, "conv2", 3, 13, 13)
    assert first.reads_channels == (0, 48)
    c1 = unit_arithmetic(model, steps, "conv1", 5, 20, 30)
    assert c1.patch.shape == c1.kernel.shape == (3, 11, 11) and c1.n_terms == 363
    np.testing.assert_array_equal(c1.kernel, model.param_layer("conv1").weight[5].detach().numpy())


def test_receptive_field_boxes_follow_alexnet_shapes(shipped):
    model, steps, _ = shipped
    rf = dict(zip(LAYERS, (r["receptive_field"] for r in layer_table("paper", 227))))
    assert unit_arithmetic(model, steps, "conv1", 0, 0, 0).box == (0, 0, 10, 10)
    assert unit_arithmetic(model, steps, "conv1", 0, 54, 54).box == (216, 216, 226, 226)
    for layer in ("conv2", "conv3", "conv5"):
        x0, y0, x1, y1 = unit_arithmetic(model, steps, layer, 0, 6, 6).box     # a middle unit: nothing clipped
        assert x1 - x0 + 1 == y1 - y0 + 1 == rf[layer], layer


def test_lrn_names_its_neighbours_and_every_step_is_there(shipped):
    model, steps, _ = shipped
    assert tuple(steps) == STEPS
    edge = unit_arithmetic(model, steps, "lrn1", 0, 10, 10)
    assert [c for c, _ in edge.neighbours] == [0, 1, 2]                   # channels -2 and -1 do not exist
    inside = unit_arithmetic(model, steps, "lrn1", 50, 10, 10)
    assert [c for c, _ in inside.neighbours] == [48, 49, 50, 51, 52]
    with pytest.raises(ValueError, match="choose one of"):
        unit_arithmetic(model, steps, "conv9", 0)


def test_a_tanh_network_is_written_with_its_own_activation():
    model = build("paper", 3, activation="tanh", width=0.25, generator=torch.Generator().manual_seed(0)).eval()
    steps = trace(model, torch.randn(1, 3, 227, 227, generator=torch.Generator().manual_seed(1)))
    a = unit_arithmetic(model, steps, "conv1", 2, 30, 30)
    assert "tanh" in a.sentence
    assert a.value == pytest.approx(network_value(steps, "conv1", 2, 30, 30), rel=1e-4, abs=1e-5)


def test_a_click_picks_the_unit_centred_there_and_the_picture_boxes_it(shipped):
    from app.lesson_words import unit_words
    from viz.arithmetic import picture, unit_at
    model, steps, _ = shipped
    assert unit_at(steps, "conv1", 5, 5) == (0, 0)                        # conv1 (0, 0) reads pixels 0-10
    assert unit_at(steps, "conv1", 113, 113) == (27, 27)                  # the middle of 55
    assert unit_at(steps, "conv5", 113, 113) == (6, 6) and unit_at(steps, "fc8", 3, 3) == (0, 0)
    a = unit_arithmetic(model, steps, "conv1", 5, 27, 27)
    photo = Image.new("RGB", (227, 227), (0, 0, 0))
    pic = np.asarray(picture(photo, a, [0.5] * 3, [0.25] * 3))
    x0, y0, x1, y1 = a.box
    assert pic.shape[1] > 227                                              # conv1: patch and kernel beside the photo
    assert tuple(pic[y0, (x0 + x1) // 2]) == (255, 40, 40)                 # the box's top edge, in red
    assert tuple(pic[(y0 + y1) // 2, (x0 + x1) // 2]) == (0, 0, 0)        # its inside untouched
    text = unit_words("en", a)
    assert "363 products" in text and f"{a.value:.4g}" in text and "the other 355 products" in text


@pytest.mark.parametrize("layer,channel,y,x", [("conv2", 200, 13, 13), ("pool1", 10, 5, 7), ("lrn1", 50, 27, 3),
                                               ("fc7", 4095, 0, 0), ("fc8", 2, 0, 0)])
def test_the_page_writes_the_arithmetic_in_english_and_chinese_with_the_same_numbers(shipped, layer, channel, y, x):
    from app.lesson_words import unit_words
    model, steps, _ = shipped
    a = unit_arithmetic(model, steps, layer, channel, y, x)
    en, zh = unit_words("en", a), unit_words("zh-CN", a)
    assert a.sentence in en                                                # the library's own sentence, word for word
    assert f"{a.value:.4g}" in zh and layer in zh                          # numbers and layer names in both
    if a.kind in ("conv", "fc"):
        assert f"{a.n_terms:,} 个乘积之和" in zh and "products" not in zh and f"{a.bias:.4g}" in zh
    if a.groups > 1:
        lo, hi = a.reads_channels
        assert f"只读取输入通道 {lo}-{hi - 1}" in zh and "group 2 of 2" in en
    if a.kind == "pool":
        assert "最大值" in zh and zh.count("**") == en.count("**")        # the winner in bold in both
