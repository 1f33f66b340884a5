"""What a finished training run changed: held-out scores with the images it got wrong, and before/after views.

    report = held_out(model, meta, decoded)            # scores on exactly the images training held out
    report.confusion, report.misclassified             # a PIL image, [(thumbnail, caption)]
    gradcam_before_after([("before", m0, meta0), ("after", m1, meta1)], x)
    drift(fc7_before, fc7_after, labels, classes)      # the same photos mapped by both models (UMAP)

The Retrain tab shows these after a run; tests call them directly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from alexnet.data import Decoded
from alexnet.evaluate import evaluate, split_indices
from viz.attribution import overlay_image, panel
from viz.embedding import fc7_features, fit_map, neighbour_gallery, scatter
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


@dataclass
class Drift:
    image: Image.Image           # the two maps side by side
    silhouette_before: float     # cosine silhouette of the classes in fc7 space (-1..1; higher = better separated)
    silhouette_after: float


def drift(before: np.ndarray, after: np.ndarray, labels, classes: list[str], seed: int = 0) -> Drift:
    """The same photos placed by the model before and after training (fc7 features (N, D) each):
    two UMAP maps side by side, each titled with how well its classes separate (silhouette, cosine).
    The two maps are fitted separately, so compare the clusters, not positions across the panels."""
    from sklearn.metrics import silhouette_score
    labels = np.asarray(labels)
    scores = [float(silhouette_score(f, labels, metric="cosine")) for f in (before, after)]
    panels = [scatter(fit_map(f, labels, classes, seed=seed), title=f"{name}: silhouette {s:.2f}", size=(5.0, 4.2))
              for f, name, s in zip((before, after), ("before training", "after training"), scores)]
    w, h = sum(p.width for p in panels), max(p.height for p in panels)
    image = Image.new("RGB", (w, h), "white")
    image.paste(panels[0], (0, 0))
    image.paste(panels[1], (panels[0].width, 0))
    return Drift(image, *scores)


def held_out_drift(before: nn.Module, before_meta: dict, after: nn.Module, after_meta: dict, decoded: Decoded,
                   progress=None) -> Drift:
    """`drift` on the validation photos training held out, each model with its own preprocessing."""
    idx = split_indices(after_meta, decoded, "val")                   # (M,) indices into the decoded folder
    images = decoded.images[idx]
    feats = [fc7_features(m, images, meta["mean"], meta["std"], int(meta["input_size"]), progress=progress)
             for m, meta in ((before, before_meta), (after, after_meta))]
    return drift(feats[0], feats[1], decoded.labels[idx].numpy(), decoded.classes)
