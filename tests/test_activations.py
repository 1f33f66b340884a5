"""Activation views: one recorded pass, titles whose shapes are alexnet.shapes' shapes, maps and bars from it."""
import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.model import FC_LAYERS, LAYERS, build
from alexnet.shapes import layer_table
from viz.activations import SPATIAL_LAYERS, channel_means, fc_bars, fc_units, layer_maps, record, shape_title

TINY = dict(num_classes=5, width=0.125)
TINY_SIZE = 99


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = build("paper", **TINY)
    x = torch.randn(1, 3, TINY_SIZE, TINY_SIZE)
    return model, x, record(model, x)


def _not_blank(img) -> None:
    a = np.asarray(img)
    assert isinstance(img, Image.Image) and a.ndim == 3 and min(a.shape[:2]) > 100
    assert a.std() > 20 and len(np.unique(a.reshape(-1, 3), axis=0)) > 50


def _expected_titles(arch: str, size: int, **options) -> dict:
    return {r["layer"]: f"{r['layer']} " + "x".join(map(str, r["out_shape"])) for r in layer_table(arch, size, **options)}


def test_record_is_one_detached_eval_pass(tiny):
    model, x, (logits, acts) = tiny
    assert list(acts) == list(LAYERS)
    assert all(a.device.type == "cpu" and not a.requires_grad for a in acts.values())
    assert torch.equal(acts["fc8"], logits)
    model.train()                                          # dropout on: record must still be deterministic
    again, _ = record(model, x)
    assert model.training                                  # mode restored
    assert torch.equal(again, logits)
    assert all(p.grad is None for p in model.parameters())


def test_titles_agree_with_layer_table(tiny):
    _, _, (_, acts) = tiny
    expected = _expected_titles("paper", TINY_SIZE, **TINY)
    for layer in LAYERS:
        assert shape_title(layer, acts[layer]) == expected[layer]
    for layer in SPATIAL_LAYERS:
        assert layer_maps(acts, layer, top_n=1)["title"] == expected[layer]
    for layer in FC_LAYERS:
        assert fc_units(acts, layer)["title"] == expected[layer]


def test_paper_model_titles_at_227():
    torch.manual_seed(0)
    _, acts = record(build("paper", 1000), torch.randn(1, 3, 227, 227))
    expected = _expected_titles("paper", 227)
    assert expected["conv1"] == "conv1 96x55x55" and expected["pool5"] == "pool5 256x6x6"
    assert {layer: shape_title(layer, acts[layer]) for layer in LAYERS} == expected


def test_top_channels_are_the_largest_means(tiny):
    _, _, (_, acts) = tiny
    out = layer_maps(acts, "conv2", top_n=5)
    means = acts["conv2"][0].mean(dim=(1, 2)).numpy()     # (1, C, H, W) -> (C, H, W) -> (C,)
    assert out["channels"].tolist() == np.argsort(-means, kind="stable")[:5].tolist()
    assert (np.diff(out["means"]) <= 0).all()
    np.testing.assert_array_equal(out["maps"], acts["conv2"][0, out["channels"]].numpy())
    np.testing.assert_allclose(channel_means(acts, "conv2"), means, rtol=1e-6)
    _not_blank(out["image"])


def test_chosen_channel_and_bad_requests(tiny):
    _, _, (_, acts) = tiny
    out = layer_maps(acts, "pool1", channel=7)
    assert out["channels"].tolist() == [7]
    assert out["maps"].shape == (1, 11, 11)              # pool1 at 99: floor((23 - 3) / 2) + 1
    np.testing.assert_array_equal(out["maps"][0], acts["pool1"][0, 7].numpy())
    with pytest.raises(IndexError):
        layer_maps(acts, "pool1", channel=12)
    with pytest.raises(ValueError):
        layer_maps(acts, "fc7")
    with pytest.raises(ValueError):
        fc_units(acts, "conv1")


def test_overlay_draws_the_input_under_the_maps(tiny):
    _, _, (_, acts) = tiny
    red = np.zeros((TINY_SIZE, TINY_SIZE, 3), dtype=np.uint8)
    red[..., 0] = 255
    plain = np.asarray(layer_maps(acts, "conv1", top_n=4)["image"]).astype(int)
    over = np.asarray(layer_maps(acts, "conv1", image=Image.fromarray(red), top_n=4)["image"]).astype(int)
    assert plain.shape == over.shape
    # A red input pushes the whole map area towards red compared with the bare maps.
    assert (over[..., 0] - over[..., 2]).mean() > (plain[..., 0] - plain[..., 2]).mean() + 10


def test_fc_units_and_bars(tiny):
    _, _, (_, acts) = tiny
    fc7 = acts["fc7"][0]
    u = fc_units(acts, "fc7", top_k=10)
    top = torch.topk(fc7, 10)
    assert u["units"].tolist() == top.indices.tolist()
    np.testing.assert_array_equal(u["values"], top.values.numpy())
    assert u["active"] == int((fc7 > 0).sum()) and u["size"] == fc7.numel()
    _not_blank(fc_bars(acts, "fc7", top_k=10))
    assert fc_units(acts, "fc8", top_k=20)["units"].size == TINY["num_classes"]   # k capped at the layer's size
    _not_blank(fc_bars(acts, "fc8", names=["a", "b", "c", "d", "e"]))
