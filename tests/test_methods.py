"""One record per attribution method (viz.methods): a method registered in ONE place is in every list.

The toy method is "how far each pixel is from the mean colour": a real (H, W) map >= 0 that needs no
backward, registered once; the page built afterwards offers it, /explain computes it, the comparison
grid draws it, the lanes run it as cheap work, and the checks take or skip it by its record.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from viz.methods import CHEAP, METHODS, SLOW, Method, names, register, unregister

TOY = "toy_input_size"


def _toy(model, x, target):
    return x[0].abs().amax(0)                                    # (1, 3, H, W) -> (H, W) >= 0


@pytest.fixture
def toy():
    register(Method(TOY, _toy, "Toy: distance from the mean colour", "Toy", CHEAP, sanity=False, quick_check=True))
    try:
        yield METHODS[TOY]
    finally:
        unregister(TOY)
    assert TOY not in METHODS


class TinyNet(torch.nn.Sequential):
    def __init__(self):
        super().__init__(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                         torch.nn.Flatten(), torch.nn.Linear(4, 2))

    def tap(self, name):                                         # Grad-CAM's layer, whatever it is called
        return self[1]


def _component(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _api(demo, name):
    return next(f.fn for f in demo.fns.values() if f.api_name == name)


def test_the_seven_records_say_what_the_old_tables_said():
    assert list(METHODS) == ["saliency", "gradcam", "guided_backprop", "lrp", "smoothgrad", "integrated_gradients",
                             "occlusion"]
    assert names(cost=CHEAP) == ("saliency", "gradcam", "guided_backprop", "lrp")
    assert names(sanity=True) == tuple(m for m in METHODS if m != "occlusion")
    assert names(quick_check=True) == names(cost=CHEAP)
    with pytest.raises(ValueError, match="cost"):
        register(Method("bad", _toy, "Bad", "Bad", cost="medium"))


def test_a_toy_method_registered_once_is_in_the_dropdown_explain_grid_lane_and_checks(toy, tmp_path):
    from PIL import Image

    from app.lanes import lane_of
    from app.page import build_app
    from viz.compare import compare_methods
    from viz.sanity import faithfulness

    assert lane_of(TOY) == CHEAP and lane_of("integrated_gradients") == SLOW
    demo = build_app()                                           # the shipped flowers model, no server needed
    try:
        choices = _component(demo, "method").choices
        assert (toy.label, TOY) in [tuple(c) for c in choices]
        photo = tmp_path / "photo.png"
        rgb = np.zeros((256, 256, 3), np.uint8)
        rgb[64:192, 64:192] = 255                                # a white square on black
        Image.fromarray(rgb).save(photo)
        overlay, npy = _api(demo, "explain")(str(photo), TOY, "flowers")
        heat = np.load(npy)
        assert heat.shape == (227, 227) and heat.min() >= 0
        assert heat[113, 113] > heat[5, 5]                       # white is farther from the mean colour than black
        assert Image.open(overlay).size == (227, 227)
    finally:
        demo.compute.shutdown()

    model = TinyNet()
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    fast = dict(integrated_gradients={"steps": 4}, smoothgrad={"samples": 2}, occlusion={"window": 16, "stride": 16})
    grid = compare_methods(model, x, 1, meta={"input_size": 32}, **fast)
    assert list(grid.explanations)[-1] == TOY and grid.explanations[TOY].heatmap.shape == (32, 32)
    assert TOY not in names(sanity=True)                         # the randomisation check's default skips it
    assert TOY in faithfulness(model, x, 1, methods=names(quick_check=True), steps=4).deletion
