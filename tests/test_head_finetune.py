"""The default fine-tune: a new fc8 on the frozen network's cached fc7 features (alexnet.train, --freeze fc7).

A second run on the same model and data never runs the trunk again; the head trained on cached features
learns what one trained on the fly learns; the run's phase split adds up to its wall time; the files are
written once, at the end, with the best epoch's head in the best file.
"""
from __future__ import annotations

import time

import pytest
import torch

from alexnet import features as F
from alexnet import weights as W
from alexnet.estimate import estimate
from alexnet.train import FINETUNE_DEPTHS, Phase, TrainConfig, resolve, train
from conftest import make_image_folder

# 1/8-width paper net at 67 px on 3 x 16 colour-coded photos decoded at 80 px: 39 train, 9 val.
SMALL = dict(mode="finetune", input_size=67, image_size=80, batch_size=8, epochs=4, device="cpu")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("head") / "images", per_class=16, size=80, seed=3)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny paper net trained from scratch on five other colour classes: features worth transferring."""
    tmp = tmp_path_factory.mktemp("src")
    other = make_image_folder(tmp / "other", classes=("a", "b", "c", "d", "e"), per_class=8, size=80, seed=5)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALEXNET_CACHE", str(tmp / "cache"))
        r = train(TrainConfig(data=str(other), out=str(tmp / "source"), mode="scratch", width=0.125, input_size=67,
                              image_size=80, batch_size=4, epochs=3, recipe="modern", lr=3e-3, dropout=0.0, device="cpu"))
    return r.checkpoint


def test_the_default_fine_tune_is_fc8_alone_on_centre_crops_with_the_heads_learning_rate():
    cfg = resolve(TrainConfig(mode="finetune"))
    assert cfg.freeze == "fc7" == FINETUNE_DEPTHS[0][0] and cfg.head_only
    assert cfg.train_views == ("centre",) and cfg.base_lr == 1e-2
    deeper = resolve(TrainConfig(mode="finetune", freeze="conv5"))
    assert deeper.train_views == ("centre", "mirror") and deeper.base_lr == 1e-3 and not deeper.head_only


def test_a_second_fine_tune_does_not_run_the_trunk_again(folder, source, tmp_path, monkeypatch):
    calls = []
    real = F.dataset_pass

    def counting(model, images, *a, index=None, **kw):
        calls.append(len(images) if index is None else len(index))
        return real(model, images, *a, index=index, **kw)
    monkeypatch.setattr(F, "dataset_pass", counting)
    first = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "one"), **SMALL))
    assert sum(calls) == 48 and not first.meta["features_cached"]       # every photo once: centre crops only
    calls.clear()
    second = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "two"), lr=3e-3, **SMALL))
    assert calls == [] and second.meta["features_cached"]
    model, meta = W.load_checkpoint(second.best_checkpoint)
    src, _ = W.load_checkpoint(source)
    assert meta["frozen"] == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"] and meta["path"] == "features"
    for name in ("conv1", "conv5", "fc6", "fc7"):                        # the trunk is the source's, to the bit
        assert torch.equal(model.param_layer(name).weight, src.param_layer(name).weight), name
    assert model.param_layer("fc8").out_features == 3


def test_the_phase_split_adds_up_to_the_wall_time(folder, source, tmp_path):
    seen = []
    t0 = time.perf_counter()
    r = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "split"), **SMALL),
              progress=seen.append)
    wall = time.perf_counter() - t0
    split = r.phase_seconds
    assert set(split) == {"decode", "model", "features", "train", "val", "save"}
    assert all(v >= 0 for v in split.values()) and split["train"] > 0 and split["save"] > 0
    assert sum(split.values()) == pytest.approx(wall, abs=0.25)         # only resolve/check run outside the clock
    assert seen[-1].phase is Phase.DONE and seen[-1].phase_seconds == pytest.approx(split)
    slowest = max(split, key=split.get)
    assert f"{slowest} " in seen[-1].time_split()                      # what the status line shows
    assert r.meta["phase_seconds"]["model"] == pytest.approx(split["model"])   # the sidecar keeps the split to the save


def test_files_are_written_once_at_the_end_with_the_best_epochs_head(folder, source, tmp_path, monkeypatch):
    writes = []
    real = W.save_checkpoint
    monkeypatch.setattr(W, "save_checkpoint", lambda path, model, meta: writes.append((path.name, meta)) or
                        real(path, model, meta))
    r = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "once"), **SMALL))
    assert sorted(n for n, _ in writes) == ["once-best.safetensors", "once-last.safetensors"]
    accs = [h["val_acc"] for h in r.history]
    best_epoch = accs.index(max(accs)) + 1
    best_model, best_meta = W.load_checkpoint(r.best_checkpoint)
    assert best_meta["metrics"]["epoch"] == best_epoch and best_meta["metrics"]["val_top1"] == max(accs)
    assert len(best_meta["history"]) == best_epoch
    last_model, last_meta = W.load_checkpoint(r.checkpoint)
    assert last_meta["metrics"]["epoch"] == 4 and len(last_meta["history"]) == 4
    if best_epoch < 4:      # two different heads, on one trunk
        assert not torch.equal(best_model.param_layer("fc8").weight, last_model.param_layer("fc8").weight)
    assert torch.equal(best_model.param_layer("fc7").weight, last_model.param_layer("fc7").weight)


def test_cached_features_learn_what_training_on_the_fly_learns(folder, source, tmp_path):
    """Tolerance: one validation photo of 9 (11 points); the paths differ only in the photos' crops."""
    cached = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "cached"), **SMALL))
    fly = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "fly"), feature_cache=False,
                            pca_aug=False, **SMALL))
    assert cached.meta["path"] == "features" and fly.meta["path"] == "full"
    a, b = cached.history[-1]["val_acc"], fly.history[-1]["val_acc"]
    assert a > 0.5 and abs(a - b) <= 1 / 9 + 1e-9, (a, b)


def test_the_estimate_counts_the_feature_pass_and_the_heads_steps():
    head = estimate(TrainConfig(mode="finetune", width=0.125, device="cpu", data="."), 500, 5)
    deep = estimate(TrainConfig(mode="finetune", freeze="conv5", width=0.125, device="cpu", data="."), 500, 5)
    assert head.per_epoch[0] > head.per_epoch[1] > 0                     # the feature pass is in the first epoch
    assert deep.per_epoch[1] > head.per_epoch[1]                         # fc6-fc8 steps cost more than fc8's
    assert deep.per_epoch[0] - deep.per_epoch[1] > head.per_epoch[0] - head.per_epoch[1]   # and mirrors, twice the pass


def test_the_lesson_recipe_trains_at_99_px_and_writes_once(tmp_path, monkeypatch):
    folder = make_image_folder(tmp_path / "images", per_class=8, size=80)
    writes = []
    real = W.save_checkpoint
    monkeypatch.setattr(W, "save_checkpoint", lambda path, model, meta: writes.append(path.name) or
                        real(path, model, meta))
    cfg = TrainConfig(data=str(folder), mode="scratch", recipe="lesson", width=0.125, image_size=110, device="cpu",
                      out=str(tmp_path / "lesson"))
    assert resolve(cfg).input_size == 99 and resolve(cfg).epochs == 3 and resolve(cfg).batch_size == 128
    r = train(cfg)
    assert sorted(writes) == ["lesson-best.safetensors", "lesson-last.safetensors"] and len(r.history) == 3
    model, meta = W.load_checkpoint(r.checkpoint)
    assert meta["input_size"] == 99 and meta["path"] == "full" and meta["metrics"]["epoch"] == 3


def test_a_fine_tune_after_the_embeddings_map_reads_the_maps_fc7(folder, source, tmp_path, monkeypatch):
    """One fc7 pass per (model, data): the Embeddings tab's (viz.embedding.fc7_features under fc7_key) serves
    the default fine-tune, whose model has a new fc8 but the source's fc7."""
    from alexnet import data as D
    from viz import embedding as E
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path / "fresh-cache"))
    d = D.decode_folder(folder, 80)
    model, meta = W.load(source)
    key = E.fc7_key(model, d.key, meta["mean"], meta["std"], 67)
    E.fc7_features(model.eval(), d.images, meta["mean"], meta["std"], 67, cache_key=key)
    monkeypatch.setattr(F, "dataset_pass", lambda *a, **k: pytest.fail("the trunk ran again"))
    r = train(TrainConfig(data=str(folder), weights=str(source), out=str(tmp_path / "after-map"), **SMALL))
    assert r.meta["features_cached"] and r.meta["path"] == "features"
