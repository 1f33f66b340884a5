"""The network drawn from alexnet.shapes (issue 23, item 1): blocks sized by their tensors, two towers where the
architecture is grouped, the photo's activations inside, clicks mapped back to layers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.model import LAYERS, build
from alexnet.shapes import layer_table, spec_table
from viz.diagram import block_at, draw, fc8_lines, towers

CLASSES = ["daisy", "dandelion", "roses", "sunflowers", "tulips"]


@pytest.fixture(scope="module")
def paper():
    torch.manual_seed(0)   # test-local weights; the library never seeds
    model = build("paper", num_classes=5).eval()
    x = torch.rand(1, 3, 227, 227, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits, acts = model(x, return_activations=True)
    return model, logits, acts


def by_layer(blocks):
    out = {}
    for b in blocks:
        out.setdefault(b.layer, []).append(b)
    return out


def side(b):
    return b.face[2] - b.face[0]


def test_blocks_follow_the_shape_table_two_towers_for_the_paper():
    rows = layer_table("paper", 227, num_classes=5)
    d = draw(rows, classes=CLASSES)
    blocks = by_layer(d.blocks)
    assert list(blocks) == ["input", *LAYERS]
    for r in rows:                                     # every block's shape is the table's row
        assert all(b.shape == tuple(r["out_shape"]) for b in blocks[r["layer"]])
    # conv1..pool5 in two towers (the paper's two GPUs), one block each for the input and fc layers
    assert all(len(blocks[n]) == 2 and {b.tower for b in blocks[n]} == {0, 1} for n in LAYERS[:8])
    assert all(len(blocks[n]) == 1 for n in ("input", "fc6", "fc7", "fc8"))
    # faces shrink as the maps do (227 -> 55 -> 27 -> 13 -> 6), strictly across each change of side
    sides = [(blocks[n][0].shape[1], side(blocks[n][0])) for n in ["input", *LAYERS[:8]]]
    for (h1, s1), (h2, s2) in zip(sides, sides[1:]):
        assert (s2 < s1) if h2 < h1 else (s2 == s1), sides
    assert min(s for _, s in sides) >= 30                      # a 6x6 map is still readable
    # fc bars as tall as their width: 4,096 units tower over fc8's 5
    h = {n: blocks[n][0].box[3] - blocks[n][0].box[1] for n in ("fc6", "fc7", "fc8")}
    assert h["fc6"] == h["fc7"] > 3 * h["fc8"]
    assert all(b.box[2] < d.image.width and b.box[3] < d.image.height for b in d.blocks)


def test_one_tower_for_torchvision_and_a_half_width_net_has_thinner_blocks():
    tv = layer_table("torchvision", 224)
    assert not towers(tv) and towers(layer_table("paper", 227))
    blocks = by_layer(draw(tv).blocks)
    assert all(len(v) == 1 for v in blocks.values())
    assert blocks["conv1"][0].shape == (64, 55, 55) and blocks["input"][0].shape == (3, 224, 224)
    depth = lambda b: (b.box[2] - b.box[0]) - side(b)         # noqa: E731  what the box adds for its channels
    full = by_layer(draw(layer_table("paper", 227)).blocks)
    half = by_layer(draw(layer_table("paper", 227, width=0.5)).blocks)
    assert depth(half["conv3"][0]) < depth(full["conv3"][0])
    assert half["conv3"][0].shape == (192, 13, 13)


def test_faces_show_the_photo_and_each_towers_own_mean_map(paper):
    _, logits, acts = paper
    acts = dict(acts)
    a = torch.zeros_like(acts["conv1"])                      # (1, 96, 55, 55): tower 0 flat, tower 1 a ramp
    a[0, 48:] = torch.linspace(0, 1, 55).view(1, 1, 55)
    acts["conv1"] = a
    photo = Image.new("RGB", (227, 227), (200, 30, 40))
    d = draw(layer_table("paper", 227, num_classes=5), acts=acts, photo=photo, classes=CLASSES)
    pix = np.asarray(d.image).astype(int)
    blocks = by_layer(d.blocks)
    x0, y0, x1, y1 = blocks["input"][0].face
    assert (np.abs(pix[(y0 + y1) // 2, (x0 + x1) // 2] - (200, 30, 40)) <= 2).all()     # the photo itself
    t0, t1 = (b.face for b in sorted(blocks["conv1"], key=lambda b: b.tower))
    row0 = pix[(t0[1] + t0[3]) // 2, t0[0] + 2:t0[2] - 2]
    row1 = pix[(t1[1] + t1[3]) // 2, t1[0] + 2:t1[2] - 2]
    assert row0.std(0).max() < 1                              # a flat map: one colour across
    assert np.abs(row1[0] - row1[-1]).sum() > 100             # the ramp: dark to bright, left to right


def test_fc8_labels_are_the_models_classes_by_this_photos_scores(paper):
    _, logits, _ = paper
    lines = fc8_lines(CLASSES, logits)
    order = logits[0].argsort(descending=True).tolist()
    assert [line.split()[0] for line in lines] == [CLASSES[i] for i in order]
    p = torch.softmax(logits[0], 0)
    assert lines[0].endswith(f"{p[order[0]]:.0%}")
    thousand = [f"c{i}" for i in range(1000)]
    assert fc8_lines(thousand)[-1] == "... 1,000 classes" and len(fc8_lines(thousand, torch.randn(1, 1000))) == 5


def test_a_click_on_a_block_names_its_layer():
    d = draw(layer_table("paper", 227, num_classes=5), classes=CLASSES)
    for b in d.blocks:
        x0, y0, x1, y1 = b.face
        assert block_at(d.blocks, (x0 + x1) / 2, (y0 + y1) / 2) == b.layer
    assert block_at(d.blocks, 2, d.image.height - 2) is None     # empty corner: nothing opens


def test_the_layers_tab_draws_the_chosen_model_and_a_click_opens_its_step(tmp_path):
    """The tab's handlers (no browser): the shipped model's diagram with a photo, and a block's step text."""
    from app.page import build_app
    from app.tab_layers import layer_step, network
    demo = build_app(checkpoints_dir=str(tmp_path / "ckpt"))
    page = demo.page
    key = page.registry.choices()[0][1]
    photo = tmp_path / "p.png"
    Image.fromarray((np.random.default_rng(0).random((240, 300, 3)) * 255).astype(np.uint8)).save(photo)
    picture, blocks = network(page, str(photo), key)
    meta = page.registry.get(key).meta
    rows = spec_table(meta["spec"], meta["input_size"])
    assert [b.shape for b in blocks if b.layer == "fc8"] == [tuple(rows[-1]["out_shape"])] == [(len(meta["classes"]),)]
    assert picture.size[0] > 1000
    conv3 = next(b for b in blocks if b.layer == "conv3")
    i, text, pic = layer_step(page, LAYERS.index(block_at(blocks, *conv3.face[:2])), str(photo), key)
    assert i == 4 and "conv3: 256x13x13 -> 384x13x13" in text and pic is not None
    assert "Upload a photo" in layer_step(page, 0, None, key)[1]
