"""Asking about any class, any layer, every method: target, contrast, Grad-CAM per layer, the comparison grid.

The two-patch model is built by hand (paper arch, width 1/8): conv1 channel 0 averages the red
pixels under its window and channel 1 the blue ones, conv2..conv5 pass both channels through,
fc6/fc7 sum each over pool5's grid, and fc8 makes class 1 the red sum and class 0 the blue sum.
On a dark image with a red patch on the left and a blue one on the right, class 1's evidence is
the left patch and class 0's the right one: every map must move when the target does.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from captum.attr import Saliency

from alexnet.model import CONV_LAYERS, build
from alexnet.shapes import layer_table
from viz.attribution import Contrast, explain, layer_cams, panel
from viz.compare import compare_methods
from viz.methods import METHODS

SIZE = 127                                            # pool5 is 6x6 without averaging
LEFT = (slice(48, 80), slice(8, 40))                  # rows, cols of the left patch
RIGHT = (slice(48, 80), slice(88, 120))
FAST = {"integrated_gradients": {"steps": 8}, "smoothgrad": {"samples": 4}, "occlusion": {"window": 32, "stride": 16}}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def two_patch_image() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = -1.5 + torch.rand(1, 3, SIZE, SIZE, generator=g)     # (1, 3, S, S) dark texture
    x[:, 0, LEFT[0], LEFT[1]] = 2.0                          # red on the left
    x[:, 2, RIGHT[0], RIGHT[1]] = 2.0                        # blue on the right
    return x


@pytest.fixture(scope="module")
def two_patch():
    model = build("paper", 2, width=0.125).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        conv1 = model.param_layer("conv1")
        conv1.weight[0, 0] = 1.0 / conv1.weight[0, 0].numel()     # channel 0: red brightness
        conv1.weight[1, 2] = 1.0 / conv1.weight[1, 2].numel()     # channel 1: blue brightness
        for name in CONV_LAYERS[1:]:
            conv = model.param_layer(name)
            k = conv.weight.shape[-1] // 2
            conv.weight[0, 0, k, k] = conv.weight[1, 1, k, k] = 1.0   # identity on channels 0, 1 (group 0)
        model.param_layer("fc6").weight[0, :36] = 1.0             # channel 0 over pool5's 6x6 grid
        model.param_layer("fc6").weight[1, 36:72] = 1.0           # channel 1
        model.param_layer("fc7").weight[0, 0] = model.param_layer("fc7").weight[1, 1] = 1.0
        fc8 = model.param_layer("fc8")
        fc8.weight[1, 0] = fc8.weight[0, 1] = 1.0                 # class 1 <- red (left), class 0 <- blue (right)
    return model


def mass(h: np.ndarray, region) -> float:
    return float(h[region].sum() / h.sum())


@pytest.mark.parametrize("method", ["saliency", "gradcam", "integrated_gradients", "guided_backprop", "lrp", "occlusion"])
def test_the_map_moves_with_the_target_class(two_patch, method):
    x = two_patch_image()
    left = explain(two_patch, x, 1, method, **FAST.get(method, {})).heatmap
    right = explain(two_patch, x, 0, method, **FAST.get(method, {})).heatmap
    # each patch is 6% of the image; coarse maps (Grad-CAM's 6x6, occlusion's windows) spill around it
    assert mass(left, LEFT) > 4 * mass(left, RIGHT) and mass(left, LEFT) > 0.25, method
    assert mass(right, RIGHT) > 4 * mass(right, LEFT) and mass(right, RIGHT) > 0.25, method


def test_contrast_attributes_the_logit_difference(two_patch):
    x = two_patch_image()
    got = explain(two_patch, x, 1, "saliency", contrast=0).heatmap
    xr = x.clone().requires_grad_(True)
    logits = two_patch(xr)
    (g,) = torch.autograd.grad(logits[0, 1] - logits[0, 0], xr)
    np.testing.assert_allclose(got, g.abs().amax(1)[0].numpy(), rtol=1e-5, atol=1e-7)
    direct = Saliency(Contrast(two_patch, 1, 0)).attribute(x, target=0, abs=True)
    np.testing.assert_allclose(got, direct.abs().amax(1)[0].numpy(), rtol=1e-5, atol=1e-7)
    p = panel(two_patch, x, 1, contrast=0)                       # the panel's one backward agrees
    np.testing.assert_allclose(p.saliency, got, rtol=1e-5, atol=1e-7)


def test_gradcam_per_layer_has_each_layers_own_resolution():
    model = build("paper", 5, width=0.125, generator=torch.Generator().manual_seed(0)).eval()
    x = torch.randn(1, 3, 227, 227, generator=torch.Generator().manual_seed(1))
    cams = layer_cams(model, x, target=2)
    sides = {r["layer"]: r["out_shape"][1:] for r in layer_table("paper", 227)}
    assert list(cams) == list(CONV_LAYERS)
    for name, cam in cams.items():
        assert cam.shape == tuple(sides[name]) and cam.dtype == np.float32 and cam.min() >= 0
    assert cams["conv1"].shape == (55, 55) and cams["conv5"].shape == (13, 13)
    # conv5's map, upsampled, is the panel's Grad-CAM (one backward serves every layer)
    up = torch.nn.functional.interpolate(torch.from_numpy(cams["conv5"])[None, None], size=(227, 227),
                                         mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(up, panel(model, x, 2).gradcam, rtol=1e-4, atol=1e-6)
    # Captum's own LayerGradCam at conv3, through explain(), agrees after its upsampling
    e = explain(model, x, 2, "gradcam", layer="conv3").heatmap
    up3 = torch.nn.functional.interpolate(torch.from_numpy(cams["conv3"])[None, None], size=(227, 227),
                                          mode="bilinear", align_corners=False)[0, 0].numpy()
    np.testing.assert_allclose(e, up3, rtol=1e-4, atol=1e-6)


def test_compare_runs_every_method_cheapest_first_with_times(two_patch):
    x, calls = two_patch_image(), []
    c = compare_methods(two_patch, x, 1, progress=lambda i, n, name: calls.append((i, n, name)), **FAST)
    order = list(METHODS)
    assert list(c.explanations) == order and order[-1] == "occlusion"
    assert calls == [(i, len(order), m) for i, m in enumerate(order)]
    assert all(e.seconds > 0 and e.target == 1 and e.heatmap.shape == (SIZE, SIZE) for e in c.explanations.values())
    assert c.grid.mode == "RGB" and min(c.grid.size) > 300     # seven methods, three a row: portrait since LRP
    stop = iter([False, False, True])                              # cancelled after two methods
    part = compare_methods(two_patch, x, 1, cancel=lambda: next(stop), **FAST)
    assert list(part.explanations) == list(METHODS)[:2]
