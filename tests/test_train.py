import json
import math
import signal
import socket
import threading

import pytest
import torch

from alexnet import weights as W
from alexnet.model import CONV_LAYERS, build
from alexnet.train import ConfigError, TrainConfig, lr_at, main, train
from conftest import make_image_folder

# Tiny everything: 1/8-width paper net at 67x67 (its smallest input) on 36 images decoded at 80x80.
TINY = dict(mode="scratch", arch="paper", width=0.125, input_size=67, image_size=80, batch_size=4, epochs=2,
            recipe="modern", lr=3e-3, dropout=0.0, device="cpu", log_every=1)
STEPS_PER_EPOCH = 8   # 30 training images (36 minus 2 per class held out) in batches of 4


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("train") / "images", per_class=12, size=80)


@pytest.fixture(scope="module")
def baseline(folder, tmp_path_factory):
    """One uninterrupted 2-epoch run that several tests compare against."""
    with pytest.MonkeyPatch.context() as mp:   # the same isolated cache as the autouse fixture
        mp.setenv("ALEXNET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        out = tmp_path_factory.mktemp("runs") / "base"
        seen = []
        result = train(TrainConfig(data=str(folder), out=str(out), **TINY), progress=seen.append)
    return result, seen


def _weights(path):
    return W.load_checkpoint(path)[0].state_dict()


def test_two_epochs_lower_the_loss_and_write_a_loadable_checkpoint(baseline):
    result, seen = baseline
    h = result.history
    assert [row["epoch"] for row in h] == [1, 2] and not result.cancelled
    assert h[1]["train_loss"] < h[0]["train_loss"] - 0.05 and h[1]["val_loss"] < math.log(3) - 0.1
    model, meta = W.load_checkpoint(result.checkpoint)
    assert model.param_layer("fc8").out_features == 3 and model.param_layer("conv1").out_channels == 12
    assert meta["classes"] == ["a", "b", "c"] and meta["input_size"] == 67 and meta["split_seed"] == 0
    assert meta["metrics"]["val_top1"] == h[1]["val_acc"] and meta["train_state"]["step"] == 2 * STEPS_PER_EPOCH
    assert meta["config"]["width"] == 0.125 and len(meta["history"]) == 2 and meta["path"] == "full"
    assert json.loads(result.checkpoint.with_name("base-last.json").read_text())["kind"] == "last"
    assert result.best_checkpoint.name == "base-best.safetensors" and W.read_meta(result.best_checkpoint)["kind"] == "best"
    # The sidecar's normalisation is the training set's own (paper arch from scratch): reddish, greenish, bluish mix.
    assert all(0.2 < m < 0.8 for m in meta["mean"]) and all(0.05 < s < 0.5 for s in meta["std"])
    x = torch.randn(2, 3, 67, 67)
    assert model(x).shape == (2, 3)
    # Progress reports: every step, with the fields the app shows.
    steps = [s for s in seen if s.phase == "train" and s.loss is not None]
    assert {s.step for s in steps} == set(range(1, 17))
    assert all(s.steps == 16 and s.epochs == 2 and s.img_per_s > 0 and s.eta_s >= 0 for s in steps)
    assert seen[-1].phase == "done" and seen[-1].val_acc == h[1]["val_acc"]


def test_resume_continues_the_step_count_and_repeats_the_same_run(folder, baseline, tmp_path):
    out = str(tmp_path / "run")
    step = [0]                          # interrupted (Ctrl-C, the app's Stop) as epoch 2 begins
    first = train(TrainConfig(data=str(folder), out=out, **TINY),
                  progress=lambda s: step.__setitem__(0, s.step), cancel=lambda: step[0] >= STEPS_PER_EPOCH)
    assert first.cancelled and first.meta["train_state"]["step"] == STEPS_PER_EPOCH
    with pytest.raises(ConfigError, match="--resume"):
        train(TrainConfig(data=str(folder), out=out, **TINY))           # no silent overwrite
    seen = []
    resumed = train(TrainConfig(data=str(folder), out=out, resume=True, **TINY), progress=seen.append)
    assert [r["step"] for r in resumed.history] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
    assert min(s.step for s in seen if s.phase == "train" and s.loss is not None) == STEPS_PER_EPOCH + 1
    # Order, crops and dropout depend only on (seed, epoch): resuming reproduces the uninterrupted run.
    a, b = _weights(baseline[0].checkpoint), _weights(resumed.checkpoint)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_cancel_mid_epoch_leaves_the_previous_checkpoint_intact(folder, tmp_path):
    out = tmp_path / "run"
    first = train(TrainConfig(data=str(folder), out=str(out), **{**TINY, "epochs": 1}))
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert set(before) == {"run-last.safetensors", "run-last.json", "run-best.safetensors", "run-best.json",
                           "run-last.state.pt"}
    calls = []

    def cancel():                       # checked every step: say stop in the middle of epoch 2
        calls.append(1)
        return len(calls) > STEPS_PER_EPOCH // 2

    result = train(TrainConfig(data=str(folder), out=str(out), resume=True, **{**TINY, "epochs": 3}), cancel=cancel)
    assert result.cancelled and len(calls) == STEPS_PER_EPOCH // 2 + 1 and len(result.history) == 1
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before   # nothing written, no temp files
    assert result.checkpoint == first.checkpoint

    stop = threading.Event()            # the app's way: an Event set from another thread (here, a progress callback)
    result = train(TrainConfig(data=str(folder), out=str(tmp_path / "other"), **TINY),
                   progress=lambda s: stop.set() if s.phase == "train" and s.step == 3 else None, cancel=stop)
    assert result.cancelled and result.checkpoint is None and not list(tmp_path.glob("other*"))


def _saved_source(tmp_path):
    torch.manual_seed(1)
    src = build("paper", 10, width=0.125)
    path = W.save_checkpoint(tmp_path / "source.safetensors", src,
                             W.make_meta(src, mean=(0.4, 0.5, 0.6), std=(0.2, 0.25, 0.3)))
    return src, path


def test_finetune_on_cached_features_replaces_fc8_and_keeps_frozen_layers(folder, tmp_path):
    src, path = _saved_source(tmp_path)
    cfg = TrainConfig(data=str(folder), mode="finetune", weights=str(path), freeze="conv5", input_size=67,
                      image_size=80, epochs=2, batch_size=4, recipe="modern", lr=3e-3, device="cpu",
                      out=str(tmp_path / "ft"))
    phases = []
    result = train(cfg, progress=lambda s: phases.append(s.phase))
    model, meta = W.load_checkpoint(result.checkpoint)
    assert meta["path"] == "features" and not meta["features_cached"] and "features" in phases
    assert meta["mean"] == [0.4, 0.5, 0.6] and meta["std"] == [0.2, 0.25, 0.3] and meta["classes"] == ["a", "b", "c"]
    assert meta["frozen"] == list(CONV_LAYERS) and model.param_layer("fc8").out_features == 3
    for name in CONV_LAYERS:
        assert torch.equal(model.param_layer(name).weight, src.param_layer(name).weight), name
    assert not torch.equal(model.param_layer("fc6").weight, src.param_layer("fc6").weight)
    # A second run with other head settings reuses the features from the cache.
    again = train(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "ft2"), "lr": 1e-3}))
    assert again.meta["features_cached"] and again.meta["features_seconds"] < result.meta["features_seconds"]


def test_partial_freeze_trains_the_rest_on_augmented_images(folder, tmp_path):
    src, path = _saved_source(tmp_path)
    result = train(TrainConfig(data=str(folder), mode="finetune", weights=str(path), freeze="conv2", input_size=67,
                               image_size=80, epochs=1, batch_size=8, device="cpu", out=str(tmp_path / "ft")))
    model, meta = W.load_checkpoint(result.checkpoint)
    assert meta["path"] == "full" and meta["frozen"] == ["conv1", "conv2"]
    assert torch.equal(model.param_layer("conv2").weight, src.param_layer("conv2").weight)
    assert not torch.equal(model.param_layer("conv3").weight, src.param_layer("conv3").weight)


def test_ddp_world_size_one_on_gloo_matches_the_single_process_run(folder, baseline, tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)).items():
        monkeypatch.setenv(k, v)
    result = train(TrainConfig(data=str(folder), out=str(tmp_path / "ddp"), **TINY))
    assert not torch.distributed.is_initialized()        # the group it opened is closed again
    a, b = _weights(baseline[0].checkpoint), _weights(result.checkpoint)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_a_corrupt_jpeg_is_reported_and_skipped(tmp_path, capsys):
    root = make_image_folder(tmp_path / "images", per_class=4, size=80)
    (root / "a" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF" + b"\x00" * 50)
    result = train(TrainConfig(data=str(root), out=str(tmp_path / "run"), **{**TINY, "epochs": 1}))
    assert "corrupt.jpg" in capsys.readouterr().err
    assert [p.endswith("corrupt.jpg") for p, _ in result.meta["skipped"]] == [True]
    assert result.meta["split"]["n_train"] + result.meta["split"]["n_val"] == 12


def test_finetune_without_weights_and_bad_flags_are_clear_errors(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(W, "imagenet_weights_path", lambda: tmp_path / "absent.pth")
    with pytest.raises(ConfigError, match="--weights imagenet"):
        train(TrainConfig(data=str(folder), mode="finetune", device="cpu"))
    with pytest.raises(ConfigError, match="too small"):
        train(TrainConfig(data=str(folder), **{**TINY, "input_size": 40}))
    before = signal.getsignal(signal.SIGINT)
    assert main(["--data", str(tmp_path / "nowhere"), "--mode", "scratch"]) == 2
    assert signal.getsignal(signal.SIGINT) is before                 # main()'s Ctrl+C handler does not outlive it
    err = capsys.readouterr().err
    assert "nowhere" in err and "ALEXNET_DATA" in err and "Traceback" not in err
    assert main(["--resume", "--data", str(folder)]) == 2 and "--resume needs --out" in capsys.readouterr().err


def test_learning_rate_schedules():
    assert [lr_at(s, 90, 0.01, "step") for s in (0, 29, 30, 60, 89)] == pytest.approx([0.01, 0.01, 1e-3, 1e-4, 1e-4])
    one = [lr_at(s, 100, 1.0, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(0.04) and max(one) == pytest.approx(1.0, abs=0.01) and one.index(max(one)) == 30
    assert one[-1] < 0.001 and all(a >= b for a, b in zip(one[30:], one[31:]))


def test_cancel_while_decoding_stops_before_any_work_is_saved(tmp_path):
    from alexnet.weights import cache_dir
    root = make_image_folder(tmp_path / "fresh", per_class=6, size=80)
    phases = []
    result = train(TrainConfig(data=str(root), out=str(tmp_path / "run"), **TINY),
                   progress=lambda s: phases.append((s.phase, s.step)), cancel=lambda: True)
    assert result.cancelled and result.checkpoint is None and result.history == []
    assert phases[0] == ("decode", 1) and phases[-1][0] == "done" and "train" not in {p for p, _ in phases}
    assert not list(tmp_path.glob("run*")) and not list((cache_dir() / "decoded").glob("fresh-*"))
