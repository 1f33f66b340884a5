"""viz.adversarial: FGSM / PGD in pixel steps, honest about uint8, leaving the model as found (issue 24, item 3)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.errors import OptionError
from alexnet.images import center_crop, normalize, preprocess
from alexnet.model import build
from viz.adversarial import LESSON, MAX_EPS, InPixels, attack, flip_epsilon, pixels

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
MEAN, STD = (0.5, 0.4, 0.3), (0.25, 0.2, 0.3)     # deliberately not the identity, so InPixels matters


@pytest.fixture(scope="module")
def small():
    """A quarter-width paper AlexNet with seeded random weights: real layers (LRN, groups, dropout,
    conv5 for Grad-CAM) at a sixteenth of the cost. These tests check mechanics, not what it says."""
    return build("paper", 5, generator=torch.Generator().manual_seed(0), width=0.25).eval()


ROSE = next(EXAMPLES.glob("roses_*.jpg"))       # held out from the shipped model's training


@pytest.fixture(scope="module")
def square():
    """The rose as the (1, 3, 256, 256) square in [0, 1] that `preprocess` crops 227 from."""
    return pixels(ROSE, 227)


@pytest.fixture(scope="module")
def photo(square):
    """The rose as the network sees it: (1, 3, 227, 227) in [0, 1], on the 1/255 grid."""
    return center_crop(square, 227)


class TwoLogits(nn.Module):
    """logits (d, 0) with d = w . ((x - mean) / std) + b: linear in the pixels, so d/dx = w / std
    and FGSM at k/255 lowers d by exactly (k/255) * ||w / std||_1 while no pixel hits 0 or 1."""

    def __init__(self, w: torch.Tensor, b: float):
        super().__init__()
        self.w, self.b = nn.Parameter(w), nn.Parameter(torch.tensor(b))
        self.body = nn.Identity()              # what Grad-CAM hooks ("conv5" is the input itself here)

    def forward(self, x):
        d = (self.body(x) * self.w).sum(dim=(1, 2, 3)) + self.b               # (B,)
        return torch.stack([d, torch.zeros_like(d)], dim=1)                    # (B, 2)

    def tap(self, name):
        return self.body


def test_eps_zero_returns_the_photo_bit_for_bit(small, photo):
    for method in ("fgsm", "pgd"):
        a = attack(small, photo, MEAN, STD, 0, method, steps=2)
        assert a.original.dtype == a.adversarial.dtype == np.uint8 and a.original.shape == (227, 227, 3)
        assert np.array_equal(a.original, (photo[0].permute(1, 2, 0) * 255).round().byte().numpy())
        assert np.array_equal(a.adversarial, a.original)
        assert a.top5_after == a.top5_before and not a.flipped and a.linf_pixels == 0
        assert np.all(a.change == 128)
        assert a.cam_before.shape == a.cam_after.shape == (227, 227) and a.cam_before.min() >= 0


def test_fgsm_flips_exactly_where_the_linear_model_says():
    g = torch.Generator().manual_seed(3)
    x01 = torch.randint(32, 224, (1, 3, 16, 16), generator=g).float() / 255    # interior: +-16 never clips
    w = (torch.rand(3, 16, 16, generator=g) + 0.5) * torch.sign(torch.randn(3, 16, 16, generator=g))
    l1 = float((w / torch.tensor(STD).view(3, 1, 1)).abs().sum())             # ||d d / d x||_1, [0, 1] units
    base = float((normalize(x01, MEAN, STD)[0] * w).sum())
    b = 6.4 / 255 * l1 - base                  # a margin of 6.4 pixel steps' worth: k = 7 flips it, 6 does not
    model = TwoLogits(w, b)
    with torch.no_grad():
        margin = float(model(normalize(x01, MEAN, STD))[0, 0])                 # the model's own margin
    k = math.ceil(255 * margin / l1)           # FGSM at k/255 moves d by -k * l1 / 255 (on the grid, no clipping)
    assert 1 < k <= MAX_EPS
    below, at = attack(model, x01, MEAN, STD, k - 1), attack(model, x01, MEAN, STD, k)
    assert below.top1_before == at.top1_before == 0
    assert not below.flipped and below.top1_after == 0
    assert at.flipped and at.top1_after == 1 and at.linf_pixels == k
    assert flip_epsilon(model, x01, MEAN, STD) == k
    towards = attack(model, x01, MEAN, STD, k, target=1)                       # targeted at the other class
    assert towards.flipped and np.array_equal(towards.adversarial, at.adversarial)


def test_the_change_stays_within_eps_and_0_255(small, photo):
    x = photo.clone()
    x[..., :20, :20], x[..., -20:, -20:] = 0.0, 1.0      # black and white corners: the bounds must hold there
    for method, eps in (("fgsm", 3), ("pgd", 16)):
        a = attack(small, x, MEAN, STD, eps, method, steps=3, generator=torch.Generator().manual_seed(0))
        delta = a.adversarial.astype(int) - a.original.astype(int)
        assert np.abs(delta).max() == a.linf_pixels <= eps
        assert a.linf_pixels == eps                    # FGSM moves by exactly eps; PGD's steps reach the edge
        assert np.array_equal(a.change.astype(int), np.clip(128 + a.change_scale * delta, 0, 255))
        assert 128 + a.change_scale * eps <= 255


@pytest.fixture(scope="module")
def shipped():
    model, meta = W.load(str(SHIPPED))
    return model, meta


def test_targeted_pgd_turns_a_held_out_rose_into_tulips_and_the_saved_png_stays_tulips(shipped, square):
    model, meta = shipped
    tulips, size = meta["classes"].index("tulips"), meta["input_size"]
    a = attack(model, square, meta["mean"], meta["std"], 8, "pgd", target=tulips, steps=10, input_size=size)
    assert a.top1_before != tulips                      # the network does not say tulips to begin with ...
    assert a.flipped and a.top1_after == tulips and a.linf_pixels <= 8    # ... and does after 8/255 at most
    assert a.cam_after_class == tulips and a.cam_before_class == a.top1_before
    assert a.adversarial.shape == a.cam_after.shape + (3,) == (256, 256, 3)
    border = np.ones((256, 256), bool)
    border[14:241, 14:241] = False                      # outside the centre crop: unseen, so unchanged
    assert np.array_equal(a.adversarial[border], a.original[border]) and a.cam_after[border].max() == 0
    png = io.BytesIO()
    Image.fromarray(a.adversarial).save(png, format="PNG")                   # what a visitor would save ...
    x = preprocess(png.getvalue(), size, meta["mean"], meta["std"])         # ... and upload again
    with torch.no_grad():
        probs = model.eval()(x).softmax(dim=1)[0]
    assert int(probs.argmax()) == tulips and abs(float(probs[tulips]) - a.top5_after[0][1]) < 1e-5


def test_pgd_random_start_comes_from_the_generator_only(small, photo):
    state = torch.random.get_rng_state()
    runs = [attack(small, photo, MEAN, STD, 4, "pgd", steps=2, generator=torch.Generator().manual_seed(s))
            for s in (1, 1, 2)]
    assert torch.equal(torch.random.get_rng_state(), state)   # torch's global RNG neither drawn nor reseeded
    assert np.array_equal(runs[0].adversarial, runs[1].adversarial)
    assert not np.array_equal(runs[0].adversarial, runs[2].adversarial)


def test_the_model_is_left_as_found(photo):
    model = build("paper", 5, generator=torch.Generator().manual_seed(1), width=0.25).train()
    model.classifier.eval()                                   # mixed modes must come back mixed
    params = list(model.parameters())
    for i, p in enumerate(params):
        p.requires_grad_(i % 3 != 0)
        p.grad = None if i % 2 else torch.full_like(p, float(i))
    grads = [None if p.grad is None else p.grad.clone() for p in params]
    modes = [m.training for m in model.modules()]
    attack(model, photo, MEAN, STD, 2, "pgd", steps=2, generator=torch.Generator().manual_seed(0))
    flip_epsilon(model, photo, MEAN, STD, max_eps=1)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in params] == [i % 3 != 0 for i in range(len(params))]
    for p, g in zip(params, grads):
        assert (p.grad is None) if g is None else torch.equal(p.grad, g)


def test_in_pixels_normalises_inside(small, photo):
    with torch.no_grad():
        assert torch.equal(InPixels(small, MEAN, STD)(photo), small(normalize(photo, MEAN, STD)))


@pytest.mark.parametrize("kwargs,words", [
    (dict(eps_pixels=-1), "eps_pixels must be a whole number from 0 to 16"),
    (dict(eps_pixels=17), "from 0 to 16"),
    (dict(eps_pixels=2.5), "not 2.5"),
    (dict(eps_pixels=True), "eps_pixels"),
    (dict(eps_pixels=2, method="deepfool"), "unknown attack 'deepfool'; choose one of fgsm, pgd"),
    (dict(eps_pixels=2, target=5), "target class must be a whole number from 0 to 4"),
    (dict(eps_pixels=2, target=-1), "target class"),
    (dict(eps_pixels=2, method="pgd", steps=0), "steps must be"),
    (dict(eps_pixels=2, method="pgd", step_pixels=0), "step_pixels must be"),
])
def test_a_visitors_mistake_is_an_option_error_that_says_what_to_do(small, photo, kwargs, words):
    with pytest.raises(OptionError, match=words):
        attack(small, photo, MEAN, STD, **kwargs)


def test_a_normalised_tensor_is_refused(small, photo):
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        attack(small, normalize(photo, MEAN, STD), MEAN, STD, 2)
    with pytest.raises(ValueError, match="input_size=300 crop"):
        attack(small, photo, MEAN, STD, 2, input_size=300)
    with pytest.raises(OptionError, match="max_eps"):
        flip_epsilon(small, photo, MEAN, STD, max_eps=99)


def test_the_lesson_is_one_plain_paragraph():
    assert "255" in LESSON and "\n" not in LESSON and 300 < len(LESSON) < 1500
