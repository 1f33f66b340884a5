"""What a finished training run changed: held-out scores with the images it got wrong, and before/after views.

    report = held_out(model, meta, decoded)            # scores on exactly the images training held out
    report.confusion, report.misclassified             # a PIL image, [(thumbnail, caption)]
    gradcam_before_after([("before", m0, meta0), ("after", m1, meta1)], x)

The Retrain tab shows these after a run; tests call them directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import nn

from alexnet.data import Decoded
from alexnet.evaluate import evaluate, split_indices
from viz.attribution import overlay_image, panel
from viz.embedding import neighbour_gallery
from viz.plots import confusion


@dataclass
class HeldOut:
    evaluation: dict                              # alexnet.evaluate.evaluate's result on the held-out split
    confusion: Image.Image                        # rows = true class, columns = predicted
    misclassified: list[tuple[Image.Image, str]]  # (thumbnail, "true X, predicted Y"), at most `limit`


def held_out(model: nn.Module, meta: dict, decoded: Decoded, limit: int = 8) -> HeldOut:
    """Evaluate on the validation images training held out (the split recorded in `meta`)."""
    idx = split_indices(meta, decoded, "val")                     # (M,) indices into the decoded folder
    images, labels = decoded.images[idx], decoded.labels[idx]
    ev = evaluate(model, meta, images, labels)
    preds = torch.as_tensor(ev["predictions"])
    bad = (preds != labels).nonzero().flatten()[:limit]           # (<= limit,) positions in the split
    thumbs = neighbour_gallery(images, bad.tolist())
    wrong = [(img, f"true {decoded.classes[int(labels[b])]}, predicted {meta['classes'][int(preds[b])]}")
             for (img, _), b in zip(thumbs, bad)]
    return HeldOut(ev, confusion(ev["confusion"], meta["classes"]), wrong)


def gradcam_before_after(models: list[tuple[str, nn.Module | None, dict | None]], x: torch.Tensor
                         ) -> list[tuple[Image.Image, str]]:
    """Grad-CAM of each model's own top-1 on one input (1, 3, S, S): [(overlay, "name: class")].

    A model given as None (no "before" for a run from scratch) is skipped. The caller holds
    any lock a shared model needs: Grad-CAM runs one backward through it.
    """
    out = []
    for name, model, meta in models:
        if model is None:
            continue
        p = panel(model.to(x.device), x)
        out.append((overlay_image(x, p.gradcam, meta["mean"], meta["std"]), f"{name}: {meta['classes'][p.target]}"))
    return out
