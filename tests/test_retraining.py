"""viz.retraining: the held-out report and the before/after Grad-CAM the Retrain tab shows after a run."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from alexnet.data import decode_folder
from alexnet.model import build
from alexnet.train import TrainConfig, train
from alexnet.weights import load_checkpoint
from conftest import make_image_folder
from viz.retraining import drift, gradcam_before_after, held_out, held_out_drift


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = make_image_folder(tmp_path_factory.mktemp("data"), per_class=8, size=80)
    r = train(TrainConfig(data=str(folder), mode="scratch", width=0.125, input_size=67, image_size=80, epochs=1,
                          batch_size=8, recipe="modern", out=str(tmp_path_factory.mktemp("ck") / "run")))
    model, meta = load_checkpoint(r.checkpoint)
    return model.eval(), meta, decode_folder(folder, 80)


def test_held_out_scores_exactly_the_recorded_split_and_lists_its_mistakes(run):
    model, meta, decoded = run
    rep = held_out(model, meta, decoded, limit=50)
    val = meta["split"]["val"]
    assert rep.evaluation["n"] == len(val) == meta["split"]["n_val"]
    cm = np.array(rep.evaluation["confusion"])
    assert cm.sum() == len(val) and cm.shape == (3, 3)
    wrong = len(val) - np.trace(cm)
    assert len(rep.misclassified) == wrong                              # every mistake, none of the hits
    for img, caption in rep.misclassified:
        true, pred = caption.removeprefix("true ").split(", predicted ")
        assert true != pred and {true, pred} <= set(decoded.classes) and img.size == (128, 128)
    assert rep.confusion.size[0] > 100                                  # a drawn matrix
    assert rep.evaluation["top1"] == pytest.approx(np.trace(cm) / len(val))


def test_gradcam_before_after_names_each_models_own_top1_and_skips_a_missing_before(run):
    model, meta, _ = run
    x = torch.randn(1, 3, 67, 67, generator=torch.Generator().manual_seed(0))
    other = build("paper", 3, width=0.125, generator=torch.Generator().manual_seed(5)).eval()
    items = gradcam_before_after([("before", None, None), ("after", model, meta), ("other", other, meta)], x)
    assert [c.split(":")[0] for _, c in items] == ["after", "other"]
    for (img, caption), m in zip(items, (model, other)):
        top = int(m(x).argmax())
        assert caption.endswith(meta["classes"][top]) and img.size == (67, 67)


def test_drift_shows_classes_separating_after_training():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)                                   # 60 photos, 3 classes
    before = rng.normal(size=(60, 32)).astype(np.float32)                  # no class structure
    centres = rng.normal(size=(3, 32)) * 4
    after = (centres[labels] + rng.normal(size=(60, 32))).astype(np.float32)   # three clusters
    d = drift(before, after, labels, ["a", "b", "c"])
    assert d.silhouette_after > 0.5 > d.silhouette_before
    assert d.image.width > 1.8 * d.image.height and d.image.mode == "RGB"


def test_held_out_drift_maps_the_recorded_validation_photos_with_both_models(run):
    model, meta, decoded = run
    before = build("paper", 3, width=0.125, generator=torch.Generator().manual_seed(9)).eval()
    d = held_out_drift(before, meta, model, meta, decoded)
    assert -1 <= d.silhouette_before <= 1 and -1 <= d.silhouette_after <= 1
    assert d.image.width > d.image.height > 200
