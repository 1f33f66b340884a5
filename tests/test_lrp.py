"""LRP (viz.lrp), the seventh method: Zennit's own numbers, conservation, and a model left as it was found.

The reference composite is built here by hand from Zennit's classes by another road than viz.lrp's
(Zennit's EpsilonGammaBox with its conv rule overridden), so a mistake in viz.lrp's composite would
show as a difference, not be copied into the reference.

Conservation: with every rule sharing a unit's relevance among its inputs only (biases zeroed in the
rules), sum(input relevance) = target logit except for what the stabilisers (1e-6 added to each
denominator) and units whose positive or negative inputs are all zero drop. Measured on the shipped
model: at most 1.8e-4 of the logit over the five held-out photos and 20 pack photos; the bound is 1e-3.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import EpsilonGammaBox
from zennit.rules import AlphaBeta, Pass
from zennit.types import Convolution

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.images import preprocess
from alexnet.model import build
from viz.attribution import Contrast, explain
from viz.lrp import relevance
from viz.methods import METHODS

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"
PHOTOS = [EXAMPLES / p["file"] for p in json.loads((EXAMPLES / "examples.json").read_text())["photos"]]
SHIPPED_TOL = 1e-3        # |sum / logit - 1| on the shipped model; measured <= 1.8e-4
RANDOM_TOL = 1e-2         # on tiny random models, logits ~1e-3: the 1e-6 stabilisers weigh more; measured <= 5e-3


@pytest.fixture(scope="module")
def shipped():
    model, meta = W.load(str(SHIPPED))
    return model.eval(), meta


def batch(photo: Path, meta: dict) -> torch.Tensor:
    return preprocess(Image.open(photo).convert("RGB"), meta["input_size"], meta["mean"], meta["std"])  # (1, 3, 227, 227)


def zennit_directly(model, x, target, mean, std) -> torch.Tensor:
    """Zennit alone: Epsilon fc, AlphaBeta(2, 1) conv, ZBox conv1 on the 0..1 pixel box, LRN passed,
    biases zeroed; output relevance = the target logit on its own output. -> (1, 3, H, W)."""
    m, s = torch.tensor(mean).view(1, 3, 1, 1), torch.tensor(std).view(1, 3, 1, 1)
    comp = EpsilonGammaBox(low=-m / s, high=(1 - m) / s, epsilon=1e-6, zero_params=["bias"],
                           layer_map=[(nn.LocalResponseNorm, Pass()),
                                      (Convolution, AlphaBeta(alpha=2, beta=1, zero_params=["bias"]))])
    with Gradient(model=model, composite=comp) as attributor:
        _, rel = attributor(x.clone(), lambda out: torch.eye(out.shape[1])[[target]] * out.detach())
    return rel


def hooks(model: nn.Module) -> dict:
    return {name: n for name, m in model.named_modules()
            if (n := len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
                + len(getattr(m, "_backward_pre_hooks", {})))}


def zero_biases(model: nn.Module) -> nn.Module:
    """A random model whose biases are zero: PyTorch's default init draws them as large as an
    untrained net's tiny activations, so units whose weighted sum is ~0 but whose output is positive
    are common, and a bias-free rule's shares explode there. Without biases the rules are exact."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


def pixels(size: int, seed: int, mean=W.IMAGENET_MEAN, std=W.IMAGENET_STD) -> torch.Tensor:
    """Random pixels 0..1, normalised: an input inside ZBox's box, as a photo is."""
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(1, 3, size, size, generator=g) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def test_the_registered_method_is_zennits_map_on_the_shipped_model(shipped):
    model, meta = shipped
    x = batch(PHOTOS[2], meta)                                            # the held-out rose
    target = int(model(x).argmax())
    ref = zennit_directly(model, x, target, meta["mean"], meta["std"])
    ours = relevance(model, x, target, meta["mean"], meta["std"])
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5 * float(ref.abs().max()))
    want = ref[0].sum(0).clamp(min=0).numpy()                             # the documented reduction
    got = METHODS["lrp"](model, x, target, mean=meta["mean"], std=meta["std"]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * want.max())
    e = explain(model, Image.open(PHOTOS[2]).convert("RGB"), target, "lrp", meta=meta)   # the box from meta too
    np.testing.assert_allclose(e.heatmap, want, rtol=1e-5, atol=1e-5 * want.max())


def test_input_relevance_sums_to_the_target_logit_on_the_shipped_model(shipped):
    model, meta = shipped
    for photo in PHOTOS:
        x = batch(photo, meta)
        with torch.no_grad():
            logits = model(x)[0]
        t = int(logits.argmax())
        total = float(relevance(model, x, t, meta["mean"], meta["std"]).sum())
        assert total / float(logits[t]) == pytest.approx(1.0, abs=SHIPPED_TOL), photo.name
    # "why tulips and not roses" (explain's Contrast): LRP(a) - LRP(b), summing to the logit difference
    a, b = 4, 2
    total = float(relevance(Contrast(model, a, b), x, 0, meta["mean"], meta["std"]).sum())
    assert total == pytest.approx(float(logits[a] - logits[b]), rel=SHIPPED_TOL, abs=1e-3 * float(logits.abs().max()))


@pytest.mark.parametrize("arch,size,classes", [("paper", 227, 10), ("paper", 127, 3), ("torchvision", 224, 7)])
def test_conservation_on_small_random_models_and_the_lrn_rule(arch, size, classes):
    model = zero_biases(build(arch, classes, width=0.25, generator=torch.Generator().manual_seed(1)).eval())
    x = pixels(size, 1)
    with torch.no_grad():
        logits = model(x)[0]
    for t in range(3):
        assert float(relevance(model, x, t).sum()) == pytest.approx(float(logits[t]), rel=RANDOM_TOL), (arch, t)
    if arch == "paper":     # the LRN rule is needed: left to its gradient, each LRN scales relevance by ~2^-0.75
        m, s = torch.tensor(W.IMAGENET_MEAN).view(1, 3, 1, 1), torch.tensor(W.IMAGENET_STD).view(1, 3, 1, 1)
        comp = EpsilonGammaBox(low=-m / s, high=(1 - m) / s, zero_params=["bias"],
                               layer_map=[(Convolution, AlphaBeta(alpha=2, beta=1, zero_params=["bias"]))])
        with Gradient(model=model, composite=comp) as attributor:
            _, rel = attributor(x.clone(), lambda out: torch.eye(classes)[[0]] * out.detach())
        assert float(rel.sum() / logits[0]) == pytest.approx(2 ** -1.5, rel=0.05)


def test_the_model_is_left_as_found_also_after_an_error():
    model = build("paper", 5, width=0.125, generator=torch.Generator().manual_seed(2))
    model.train()                                                         # whatever mode the caller left
    model.param_layer("conv1").requires_grad_(False)                      # a partly frozen model
    params = {n: (p, p.requires_grad, p.detach().clone()) for n, p in model.named_parameters()}
    x = pixels(127, 0)
    heat = METHODS["lrp"](model, x, 1)
    assert heat.shape == (127, 127) and heat.min() >= 0 and not heat.requires_grad
    with pytest.raises(IndexError):
        relevance(model, x, 99)                                          # fails after the hooks are on
    assert model.training and not hooks(model)
    for n, p in model.named_parameters():
        same, grad_flag, value = params[n]
        assert p is same and p.requires_grad == grad_flag and torch.equal(p, value) and p.grad is None, n
    assert all(isinstance(m.weight, nn.Parameter) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_explain_gives_a_nonzero_map_on_the_shipped_model_as_the_app_asks(shipped):
    model, meta = shipped
    e = explain(model, Image.open(PHOTOS[0]).convert("RGB"), method="lrp", meta=meta)   # /explain: ImageNet box
    assert e.method == "lrp" and e.heatmap.shape == (227, 227) and e.heatmap.dtype == np.float32
    assert np.isfinite(e.heatmap).all() and e.heatmap.min() >= 0 and e.heatmap.max() > 0
    assert (e.heatmap > 0).mean() > 0.05                                 # evidence spread over the flower, not one pixel
    assert not hooks(model)
