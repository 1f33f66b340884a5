"""Attribution on a network whose answer is known by construction, plus the panel's one-backward reuse.

The known model is a real (paper-arch, width 1/8) AlexNet with hand-set weights: conv1 channel 0
averages the pixels under its window, conv2..conv5 pass channel 0 straight through, fc6/fc7
sum it, and fc8 turns it into class 1's logit. The test image has one bright patch on a dark
textured background, so ReLU keeps only windows touching the patch: class 1's logit depends on
that patch's brightness and on nothing else, and every honest map must point at it.
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from captum.attr import LayerAttribution, LayerGradCam, Saliency
from PIL import Image

from alexnet.model import CONV_LAYERS, LAYERS, build
from viz.attribution import METHODS, UNTRAINED_NOTICE, Explanation, explain, panel, panels
from viz.sanity import faithfulness, sanity_check

SIZE = 127                                 # conv5 is 6x6 here: coarse but enough for Grad-CAM
PATCH = (slice(24, 56), slice(64, 96))     # rows, cols of the bright patch: 6.3 % of the image
FAST = {                                   # small budgets keep the module well under a minute
    "integrated_gradients": {"steps": 8},
    "smoothgrad": {"samples": 8},
    "occlusion": {"window": 32, "stride": 16},
}

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's "set requires_grad" notes


def known_image(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = -1.5 + torch.rand(1, 3, SIZE, SIZE, generator=g)  # (1, 3, S, S) texture below the mean colour
    x[..., PATCH[0], PATCH[1]] = 2.0
    return x


@pytest.fixture(scope="module")
def known():
    model = build("paper", 2, width=0.125).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        conv1 = model.param_layer("conv1")
        conv1.weight[0] = 1.0 / conv1.weight[0].numel()          # channel 0 = mean brightness under the window
        for name in CONV_LAYERS[1:]:
            conv = model.param_layer(name)
            k = conv.weight.shape[-1] // 2
            conv.weight[0, 0, k, k] = 1.0                        # identity on channel 0 (group 0 holds it)
        model.param_layer("fc6").weight[0, :36] = 1.0            # sum channel 0 over pool5's 6x6 grid
        model.param_layer("fc7").weight[0, 0] = 1.0
        f = model(known_image(), return_activations=True)[1]["fc7"][0, 0].item()
        fc8 = model.param_layer("fc8")
        fc8.weight[1, 0], fc8.bias[1] = 8.0 / f, -4.0            # logit margin +4 on the image, -4 on grey
    return model


@pytest.fixture(scope="module")
def random_model():
    torch.manual_seed(0)
    return build("paper", 10, width=0.125).eval()


def patch_mask() -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    m[PATCH] = True
    return m


def test_known_model_is_what_the_tests_assume(known):
    p_img = known(known_image()).softmax(1)[0, 1].item()
    p_grey = known(torch.zeros(1, 3, SIZE, SIZE)).softmax(1)[0, 1].item()
    assert p_img > 0.95 and p_grey < 0.05


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_points_at_the_patch(known, method):
    e = explain(known, known_image(), method=method, **FAST.get(method, {}))
    h, mask = e.heatmap, patch_mask()
    assert isinstance(e, Explanation) and e.target == 1 and e.method == method and e.seconds > 0
    assert h.shape == (SIZE, SIZE) and h.dtype == np.float32 and np.isfinite(h).all() and h.min() >= 0
    assert e.overlay.size == (SIZE, SIZE) and e.overlay.mode == "RGB"
    share = h[mask].sum() / h.sum()
    assert share > 2.5 * mask.mean(), f"{method}: {share:.2f} of the mass in {mask.mean():.2f} of the area"
    assert h[mask].max() >= 0.99 * h.max(), f"{method}: the peak is outside the patch"


def test_explain_unpacks_takes_pil_and_flags_untrained(random_model):
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (80, 100, 3), dtype=np.uint8))
    heat, over = explain(random_model, img, method="gradcam", meta={"input_size": 99, "mean": [0.5] * 3, "std": [0.25] * 3})
    assert heat.shape == (99, 99) and over.size == (99, 99)
    e = explain(random_model, torch.randn(3, 99, 99), target=3, trained=False)
    assert e.target == 3 and e.notice == UNTRAINED_NOTICE
    assert explain(random_model, torch.randn(1, 3, 99, 99)).notice is None


def test_unknown_method_and_option_say_what_is_valid(random_model):
    x = torch.randn(1, 3, 99, 99)
    with pytest.raises(ValueError, match="saliency, gradcam, guided_backprop"):
        explain(random_model, x, method="lime")
    with pytest.raises(TypeError, match="steps"):
        explain(random_model, x, method="saliency", steps=4)
    with pytest.raises(ValueError, match="tensor"):
        explain(random_model, torch.randn(2, 3, 99, 99))


def test_guided_backprop_refuses_inplace_relus(random_model):
    model = copy.deepcopy(random_model)
    model.features[1].inplace = True
    with pytest.raises(ValueError, match="non-inplace"):
        explain(model, torch.randn(1, 3, 99, 99), method="guided_backprop")


def test_panel_reuses_one_backward_for_captums_saliency_and_gradcam(random_model):
    x = torch.randn(1, 3, 99, 99, generator=torch.Generator().manual_seed(1))
    p = panel(random_model, x, trained=False)
    assert p.notice == UNTRAINED_NOTICE and p.seconds > 0
    assert p.target == p.top5[0][0] == int(p.logits.argmax())
    assert len(p.top5[0]) == 5 and p.top5[1] == sorted(p.top5[1], reverse=True)
    assert torch.allclose(p.probs, p.logits.softmax(0)) and p.probs.shape == (10,)
    assert list(p.acts) == list(LAYERS) and not any(a.requires_grad for a in p.acts.values())
    assert all(q.grad is None for q in random_model.parameters())  # nothing left on the caller's weights

    sal = Saliency(random_model).attribute(x, target=p.target, abs=True).amax(1)[0].numpy()  # (H, W)
    cam = LayerGradCam(random_model, random_model.tap("conv5")).attribute(x, target=p.target, relu_attributions=True)
    cam = LayerAttribution.interpolate(cam, (99, 99), "bilinear")[0, 0].detach().numpy()     # (H, W)
    assert p.saliency.shape == p.gradcam.shape == (99, 99) and p.saliency.min() >= 0 and p.gradcam.min() >= 0
    np.testing.assert_allclose(p.saliency, sal, rtol=1e-4, atol=1e-6 * sal.max())
    np.testing.assert_allclose(p.gradcam, cam, rtol=1e-4, atol=1e-6 * max(cam.max(), 1e-12))
    assert p.saliency.max() > 0


def test_panel_matches_explain_on_the_known_model(known):
    p = panel(known, known_image())
    assert p.target == 1
    np.testing.assert_allclose(p.saliency, explain(known, known_image(), method="saliency").heatmap, rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(p.gradcam, explain(known, known_image(), method="gradcam").heatmap, rtol=1e-4, atol=1e-9)


def test_a_batch_of_panels_equals_each_image_alone(random_model):
    """The app batches visitors' requests: each image's maps must be those it gets alone, whatever its
    neighbours in the batch and whichever class (or contrast) each one asks for."""
    g = torch.Generator().manual_seed(3)
    xs = torch.randn(4, 3, 99, 99, generator=g)
    targets, contrasts = [None, 7, 2, None], [None, None, 5, 1]
    batch = panels(random_model, xs, targets, contrasts=contrasts)
    assert len(batch) == 4
    for i, got in enumerate(batch):
        alone = panel(random_model, xs[i:i + 1], targets[i], contrast=contrasts[i])
        assert got.target == alone.target and got.top5[0] == alone.top5[0]
        torch.testing.assert_close(got.logits, alone.logits, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(got.saliency, alone.saliency, rtol=1e-3, atol=1e-6 * alone.saliency.max())
        np.testing.assert_allclose(got.gradcam, alone.gradcam, rtol=1e-3, atol=1e-6 * max(alone.gradcam.max(), 1e-12))
        assert got.acts["conv1"].shape[0] == 1 and got.acts["conv1"].untyped_storage().nbytes() == \
            got.acts["conv1"].numel() * 4                  # its own copy, not a view that pins the whole batch
    assert batch[1].target == 7 and batch[0].target == int(batch[0].logits.argmax())
    assert not np.allclose(batch[0].saliency, batch[3].saliency)   # different images, different maps


def test_sanity_check_correlation_falls_and_caller_model_is_untouched(known):
    before = copy.deepcopy(known.state_dict())
    s = sanity_check(known, known_image(), methods=("saliency", "integrated_gradients", "gradcam"),
                     method_options=FAST)
    assert s.steps == ("original", "fc8", "fc7", "fc6", "conv5", "conv4", "conv3", "conv2", "conv1")
    for m in ("saliency", "integrated_gradients"):
        rho = s.correlations[m]
        assert rho.shape == (9,) and rho[0] == pytest.approx(1.0)
        assert rho[1] > 0.9 and rho[-1] < rho[1] - 0.3, f"{m}: {np.round(rho, 2)}"
    assert all(torch.equal(v, known.state_dict()[k]) for k, v in before.items())
    assert s.figure.axes


def test_faithfulness_deletion_beats_insertion_on_the_known_model(known):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = faithfulness(known, known_image(), steps=10, batch_size=11, method_options=FAST)
    assert f.target == 1 and f.fractions.shape == (11,)
    for m in METHODS:
        d, i = f.deletion[m], f.insertion[m]
        assert 0.0 <= d <= 1.0 and 0.0 <= i <= 1.0
        assert d < i, f"{m}: deletion {d:.3f} !< insertion {i:.3f}"
        assert f.curves[m][0][0] == pytest.approx(f.curves[m][1][-1])  # both ends are the untouched image
    assert len(f.figure.axes) == 2


def test_spearman_handles_ties_like_scipy():
    stats = pytest.importorskip("scipy.stats")
    from viz.sanity import spearman
    rng = np.random.default_rng(0)
    a = rng.integers(0, 4, (20, 20)).astype(float)  # many ties, like a ReLU'd map's zeros
    b = a + rng.normal(size=a.shape)
    assert spearman(a, b) == pytest.approx(stats.spearmanr(a.ravel(), b.ravel()).statistic)
    assert spearman(a, np.zeros_like(a)) == 0.0


def test_smoothgrad_depends_on_its_seed_and_not_on_other_threads_random_draws():
    """Two concurrent SmoothGrad requests with one seed give identical maps while another thread
    reseeds and draws from torch's global RNG (what a training thread used to do)."""
    import threading
    model = build("paper", 3, width=0.125, generator=torch.Generator().manual_seed(1)).eval()
    x = known_image(3)
    smooth = METHODS["smoothgrad"]
    ref = smooth(model, x, 1, samples=4, seed=7).numpy()
    assert not np.allclose(ref, smooth(model, x, 1, samples=4, seed=8).numpy())   # the noise matters
    stop, maps = threading.Event(), [None, None]

    def noisy_neighbour():
        i = 0
        while not stop.is_set():
            torch.manual_seed(i)
            torch.randn(10_000)
            i += 1

    def request(k):
        maps[k] = smooth(model, x, 1, samples=4, seed=7).numpy()
    other = threading.Thread(target=noisy_neighbour)
    other.start()
    try:
        threads = [threading.Thread(target=request, args=(k,)) for k in range(2)]
        [t.start() for t in threads]
        [t.join() for t in threads]
    finally:
        stop.set()
        other.join()
    np.testing.assert_array_equal(maps[0], ref)
    np.testing.assert_array_equal(maps[1], ref)
