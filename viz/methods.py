"""One record per attribution method: all that the app, the checks and the CLIs know about it.

    from viz.methods import CHEAP, Method, register
    register(Method("toy", fn, label="Toy (input size)", short="Toy", cost=CHEAP))

The six of viz.maps and viz.lrp's LRP are registered below; everything that lists methods reads `METHODS`,
in registration order (cheapest first, occlusion last):
- the Classify tab's dropdown (`label`), the comparison grid (`short`, every method),
- `/explain`, the folder CLI and `explain()` (the names),
- the app's lanes (`cost`: a cheap method runs beside visitors' top-5 passes, a slow one on the
  slow lane's copy of the model and gives way to cheap work),
- the cascading-randomisation check (`sanity`) and the app's "Run both checks" (`quick_check`:
  the check repeats a method once per layer, so only one-pass methods by default).
Adding a method is one function and one `register` call (pytorch-grad-cam's one-class-per-CAM idea).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from alexnet.errors import OptionError
from viz.lrp import _lrp
from viz.maps import _gradcam, _guided_backprop, _integrated_gradients, _occlusion, _saliency, _smoothgrad

CHEAP, SLOW = "cheap", "slow"      # one forward + at most one backward / many passes (IG's 32 steps, occlusion's ~100)


@dataclass(frozen=True)
class Method:
    name: str                                      # the API's and the CLI's word: "integrated_gradients"
    fn: Callable[..., torch.Tensor]                # (model, x (1, 3, H, W), target, **options) -> (H, W) >= 0
    label: str                                     # the dropdown's words: "Integrated Gradients (32 steps)"
    short: str                                     # the comparison grid's title: "Integrated Gradients"
    cost: str = SLOW                               # CHEAP or SLOW: which lane the app runs it in
    sanity: bool = True                            # in the cascading-randomisation check by default
    quick_check: bool = False                      # in the app's "Run both checks" (once per layer: cheap ones)
    takes_norm: bool = False                       # fn takes mean=, std=: explain() passes the checkpoint's

    def __call__(self, model, x: torch.Tensor, target: int, **options) -> torch.Tensor:
        return self.fn(model, x, target, **options)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add (or replace) a method; it appears wherever methods are listed from then on."""
    if method.cost not in (CHEAP, SLOW):
        raise ValueError(f"cost must be {CHEAP!r} or {SLOW!r}, not {method.cost!r}")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> None:
    """Remove a method (tests that register a toy one)."""
    METHODS.pop(name, None)


def check_method(method: str) -> str:
    if method not in METHODS:
        raise OptionError(f"unknown attribution method {method!r}; choose one of {', '.join(METHODS)}")
    return method


def names(**where) -> tuple[str, ...]:
    """Method names in order, filtered by fields: names(sanity=True), names(cost=CHEAP)."""
    return tuple(n for n, m in METHODS.items() if all(getattr(m, k) == v for k, v in where.items()))


def is_cheap(method: str) -> bool:
    return METHODS[check_method(method)].cost == CHEAP


# The seven, in the order every list shows them: one-pass methods first, occlusion (hundreds of passes) last.
# LRP is one forward and one rule-modified backward (alpha-beta re-runs each conv 4 times): 3-4x saliency's time
# on a CPU, far from IG's 32 passes, so cheap.
for _m in (
    Method("saliency", _saliency, "Saliency (gradient)", "Saliency", CHEAP, quick_check=True),
    Method("gradcam", _gradcam, "Grad-CAM (at the layer chosen below)", "Grad-CAM", CHEAP, quick_check=True),
    Method("guided_backprop", _guided_backprop, "Guided Backprop", "Guided Backprop", CHEAP, quick_check=True),
    Method("lrp", _lrp, "LRP (Zennit: ε fc, α2β1 conv, box input)", "LRP", CHEAP, quick_check=True, takes_norm=True),
    Method("smoothgrad", _smoothgrad, "SmoothGrad (16 noisy copies)", "SmoothGrad"),
    Method("integrated_gradients", _integrated_gradients, "Integrated Gradients (32 steps)", "Integrated Gradients"),
    Method("occlusion", _occlusion, "Occlusion (slow on CPU)", "Occlusion", sanity=False),
):
    register(_m)
