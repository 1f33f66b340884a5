"""Layer-wise Relevance Propagation (Bach et al. 2015), the seventh attribution method, computed by Zennit.

LRP sends the target logit back down the network one layer at a time; each layer shares out the
relevance it receives among its inputs in proportion to what they contributed, so the input's
relevance adds up to the logit ("conservation"). How a layer shares is its rule; a rule per kind of
layer is a composite. Ours, for a plain ReLU conv net (after Montavon et al. 2019, "Layer-wise Relevance
Propagation: an overview": a rule per depth), built from Zennit's own rules:

- fc6, fc7, fc8 (Linear): Epsilon, eps = 1e-6 - next to LRP-0, i.e. gradient x input, which is exact for
  a linear layer; the top layers decide the class and are explained as they compute.
- conv2-conv5: AlphaBeta, alpha = 2, beta = 1 - positive contributions share 2x the relevance, negative
  ones take back 1x, each part normalised by its own sum; maps less noisy than gradient x input.
  Grouped convs need nothing special: the rule re-runs the module's own forward with clamped weights.
- conv1: ZBox over the box [low, high] = the normalised image of pixel values 0..1 per channel,
  low = (0 - mean) / std, high = (1 - mean) / std: its inputs are bounded pixels, not activations >= 0.
- ReLU (our in-place-under-no_grad subclass is an nn.ReLU): Pass - relevance goes through unchanged.
- LocalResponseNorm: Pass, stated here because Zennit has no rule for it (it is in none of Zennit's
  type lists; `isinstance` on nn.LocalResponseNorm also catches our 1x1-conv subclass). LRN rescales
  each position by a factor of its channel neighbours, so it moves no relevance between units; left
  to the gradient it would scale relevance by ~(k = 2)^-0.75 = 0.59 per LRN and break conservation.
- MaxPool: no rule, i.e. the gradient: a window's relevance all goes to its winner.
- AdaptiveAvgPool: Norm (the identity at 227 / 224 input; at other sizes, an average's relevance
  shared by contribution). Dropout (eval mode) is the identity and keeps the gradient.

Biases: zero_params=["bias"] - every rule shares a unit's relevance among its inputs only, as if its
bias were zero, so no relevance is absorbed by biases and sum(input relevance) = target logit up to the
stabilisers (tests/test_lrp.py measures it). Kept, the biases of the shipped flowers model absorb
46-94 % of the logit on the five held-out photos (this composite), and the sum says nothing.
Why alpha-beta and not Gamma for the convs: with biases zeroed, Zennit's Gamma rule picks a unit's
positive or negative path by its biased output but shares by the unbiased z + gamma z+, which nears
zero or flips sign wherever a bias dominates; relevance then explodes there (the held-out daisy summed
to 1.044 x its logit, and its map was blotches of alternating sign). Alpha-beta's two sums, of the
positive and of the negative contributions, never cancel.

The box: explain() passes the checkpoint's mean / std (the record's `takes_norm`); called without them
(the comparison grid, the checks), they default to ImageNet's. For the shipped flowers model (mean .489
.438 .312, std .295 .268 .291) that box holds the true 0..1 box in every channel, so ZBox stays a valid
rule there, only less tight.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from zennit.attribution import Gradient
from zennit.composites import SpecialFirstLayerMapComposite
from zennit.rules import AlphaBeta, Epsilon, Norm, Pass, ZBox
from zennit.types import Activation, AvgPool, Convolution

from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD

EPSILON = 1e-6          # fc layers' epsilon: a stabiliser only, so conservation is tight
ALPHA, BETA = 2.0, 1.0  # conv2-conv5; alpha - beta = 1 keeps conservation
ZERO_PARAMS = ["bias"]  # see the module docstring: relevance is shared among inputs, none kept by biases


def box(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> tuple[torch.Tensor, torch.Tensor]:
    """(low, high), each (1, 3, 1, 1): pixel values 0 and 1 after the model's normalisation."""
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (0.0 - m) / s, (1.0 - m) / s


def composite(mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, *,
              epsilon: float = EPSILON, alpha: float = ALPHA, beta: float = BETA) -> SpecialFirstLayerMapComposite:
    """The composite of the module docstring. A fresh one per call: a Zennit composite may be registered
    on one model at a time, and the app explains several models at once. Modules in none of the
    lists (MaxPool, Dropout) keep their gradient; the first Conv2d met in module order is conv1."""
    low, high = box(mean, std)
    layer_map = [
        (Activation, Pass()),
        (nn.LocalResponseNorm, Pass()),
        (AvgPool, Norm()),
        (Convolution, AlphaBeta(alpha=alpha, beta=beta, zero_params=ZERO_PARAMS)),
        (nn.Linear, Epsilon(epsilon=epsilon, zero_params=ZERO_PARAMS)),
    ]
    first_map = [(Convolution, ZBox(low=low, high=high, zero_params=ZERO_PARAMS))]
    return SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map)


def _is_contrast(model: nn.Module) -> bool:
    """viz.attribution.Contrast, known by its fields: importing it would close an import circle
    (viz.attribution -> viz.methods -> here), which tests/test_structure.py forbids even lazily."""
    return isinstance(getattr(model, "model", None), nn.Module) and isinstance(getattr(model, "a", None), int) \
        and isinstance(getattr(model, "b", None), int)


def _output_relevance(model: nn.Module, target: int):
    """(the module to propagate through, logits -> the relevance put on them).

    One class: its logit on its own output, zero elsewhere, so the input's relevance sums to that logit.
    viz.attribution.Contrast (explain's "why a and not b") has one output, a - b; propagating it through
    the subtraction would give a +x, b -x at fc8, and Epsilon normalises each by its own logit, so the
    input would sum to x - x = 0. LRP being linear in the output relevance, the contrast map is instead
    LRP(a) - LRP(b) on the wrapped model: logit a on a, -logit b on b, summing to the difference.
    """
    signs = [(target, 1.0)]
    if _is_contrast(model):
        if target != 0:
            raise ValueError(f"a Contrast has one output, 0; not {target}")
        model, signs = model.model, [(model.a, 1.0), (model.b, -1.0)]   # a == b: the two cancel, as a - a does

    def on_logits(logits: torch.Tensor) -> torch.Tensor:          # (B, K) -> (B, K)
        w = torch.zeros_like(logits)
        for k, s in signs:
            w[:, k] += s                                          # an out-of-range class raises IndexError here
        return logits.detach() * w                                # detached: the rules must not build a graph on it
    return model, on_logits


def relevance(model: nn.Module, x: torch.Tensor, target: int, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD, **rules) -> torch.Tensor:
    """(1, 3, H, W) normalised input -> (1, 3, H, W) signed input relevance; sum ~= the target logit.

    One forward and one (rule-modified) backward with Zennit's Gradient attributor. Its `with` registers
    the composite's hooks and removes them on the way out, exception or not; while a rule runs it swaps a
    layer's weights for modified copies and puts the originals back (Zennit's ParamMod, try/finally), so
    the model must not run elsewhere meanwhile: the app runs cheap methods under the model's lock.
    Mode and requires_grad are not touched (explain() puts the model in eval mode; do so when calling
    this directly, or dropout draws). `rules`: epsilon=, alpha=, beta= for `composite`.
    """
    net, on_logits = _output_relevance(model, int(target))
    x = x.detach().clone()                    # Zennit sets requires_grad on the tensor it is given
    with torch.enable_grad(), Gradient(model=net, composite=composite(mean, std, **rules)) as attributor:
        _, rel = attributor(x, on_logits)
    return rel.detach()


def _lrp(model, x, target, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
         epsilon: float = EPSILON, alpha: float = ALPHA, beta: float = BETA):
    """The method: relevance summed over the colour channels (a pixel's relevance, as conservation counts
    it), then ReLU - positive evidence for the class only, like Grad-CAM's and occlusion's maps."""
    rel = relevance(model, x, target, mean, std, epsilon=epsilon, alpha=alpha, beta=beta)   # (1, 3, H, W)
    return rel[0].sum(0).clamp(min=0)                                            # (H, W) >= 0
