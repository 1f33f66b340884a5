"""Every attribution method for one image and one class, side by side, each captioned with its run time.

    c = compare_methods(model, x, target, meta=meta, progress=lambda i, n, name: ...)
    c.grid                      # one PIL image: a 2 x 3 grid of overlays, cheap methods first
    c.explanations["gradcam"]   # each method's viz.attribution.Explanation (map, overlay, seconds)

Methods run cheapest first and occlusion (hundreds of forwards) last, so a visitor watching
the progress sees most of the grid early. Each map keeps its own 0-1 scale: the methods'
units differ (gradients, logit drops), so only their shapes are comparable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from viz.attribution import METHODS, Explanation, explain
from viz.plots import figure_to_image, new_figure


@dataclass
class Comparison:
    explanations: dict[str, Explanation]    # method -> its answer, in viz.methods order
    grid: Image.Image
    target: int


def compare_methods(model: nn.Module, x: torch.Tensor, target: int, *, meta: dict | None = None,
                    contrast: int | None = None, methods=None, progress=None, cancel=None,
                    title: str = "", **options) -> Comparison:
    """Run `methods` (default: every registered one; always in viz.methods order, cheapest first) on the
    normalised input x (1, 3, S, S) for `target` (minus `contrast`).

    `progress(done, total, method)` is called before each method; `cancel()` (or an Event) stops
    between methods and the grid shows what finished. `options` maps a method name to its
    options, e.g. integrated_gradients={"steps": 16}.
    """
    todo = [m for m in METHODS if methods is None or m in methods]
    out: dict[str, Explanation] = {}
    for i, name in enumerate(todo):
        if cancel is not None and (cancel.is_set() if hasattr(cancel, "is_set") else cancel()):
            break
        if progress is not None:
            progress(i, len(todo), name)
        out[name] = explain(model, x, target, name, meta=meta, contrast=contrast, **options.get(name, {}))
    return Comparison(out, grid(out, title), int(target))


def grid(explanations: dict[str, Explanation], title: str = "", cols: int = 3) -> Image.Image:
    """Overlays in a grid, each titled with its method and milliseconds."""
    n = max(1, len(explanations))
    rows = -(-n // cols)                                             # ceil(n / cols)
    fig = new_figure(3.2 * cols, 3.4 * rows)
    for i, (name, e) in enumerate(explanations.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.imshow(np.asarray(e.overlay))
        ax.set_title(f"{METHODS[name].short if name in METHODS else name} ({e.seconds * 1000:.0f} ms)", fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return figure_to_image(fig)
