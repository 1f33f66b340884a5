"""The fast from-scratch recipe: progressive sizes, batched random-resized crops, BVLC conv1 start,
the time estimate, and flags checked before any decoding."""
from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from alexnet import bvlc
from alexnet import data as D
from alexnet.augment import SIZE_STEP, progressive_sizes, random_resized_crop_flip, step_work
from alexnet.estimate import estimate
from alexnet.model import build
from alexnet.train import ConfigError, TrainConfig, epoch_sizes, main, resolve, train
from alexnet.weights import load_checkpoint


@pytest.mark.parametrize("epochs", [1, 2, 3, 5, 8, 12, 16, 24])
def test_progressive_sizes_ramp_up_to_the_test_size(epochs):
    sizes = progressive_sizes(epochs, 227)
    assert len(sizes) == epochs and sizes[-1] == 227
    assert sizes == sorted(sizes)                                   # never back down
    assert set(sizes) <= {131, 163, 195, 227}
    assert all((s - 11) % 4 == 0 for s in sizes)                    # conv1's windows tile every size exactly
    if epochs >= 8:                                                 # most epochs at the cheapest size
        assert sizes.count(131) >= epochs // 2
        assert sum(step_work(s, 227) for s in sizes) < 0.6 * epochs


def test_progressive_sizes_other_final_sizes_and_floor():
    assert progressive_sizes(6, 224, low=160) == [160, 160, 160, 160, 192, 224]
    assert progressive_sizes(4, 131) == [131] * 4                   # nothing below the floor: no ramp
    assert progressive_sizes(5, 227, final_epochs=2)[-2:] == [227, 227]
    assert all(b - a in (0, SIZE_STEP) for a, b in zip(progressive_sizes(20, 227), progressive_sizes(20, 227)[1:]))
    with pytest.raises(ValueError):
        progressive_sizes(0, 227)


def test_config_resolves_recipe_defaults_and_sizes():
    c = resolve(TrainConfig(mode="scratch"))
    assert (c.recipe, c.epochs, c.batch_size, c.progressive) == ("fast", 16, 32, True)
    assert epoch_sizes(c, 227) == progressive_sizes(16, 227)
    assert resolve(TrainConfig(mode="finetune")).progressive is False
    p = resolve(TrainConfig(mode="scratch", recipe="paper"))
    assert (p.epochs, p.batch_size, p.progressive) == (10, 128, False)
    assert epoch_sizes(p, 227) == [227] * 10
    assert resolve(TrainConfig(mode="scratch", epochs=3, batch_size=7)).batch_size == 7


def _gradient_images(b=16, size=256):
    """A left-to-right ramp in red and top-to-bottom ramp in green: a mirror or a crop is easy to see."""
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    img = torch.stack([xx, yy, torch.zeros_like(xx)]).float() * 255 / (size - 1)
    return img.round().to(torch.uint8).expand(b, 3, size, size).contiguous()


def test_random_resized_crop_whole_image_is_a_resize_or_its_mirror():
    u = _gradient_images()
    g = torch.Generator().manual_seed(0)
    out = random_resized_crop_flip(u, 131, g, scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert out.shape == (16, 3, 131, 131) and out.dtype == torch.float32
    ref = F.interpolate(u[:1].float() / 255, size=(131, 131), mode="bilinear", align_corners=False)
    plain = (out - ref).abs().amax(dim=(1, 2, 3)) < 0.02
    mirrored = (out - ref.flip(-1)).abs().amax(dim=(1, 2, 3)) < 0.02
    assert bool((plain | mirrored).all())
    assert 0 < int(plain.sum()) < 16                                # both kinds occur in a batch of 16


def test_random_resized_crops_cover_part_of_the_image():
    u = _gradient_images(64)
    out = random_resized_crop_flip(u, 99, torch.Generator().manual_seed(1), scale=(0.25, 0.25), ratio=(1.0, 1.0))
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0
    # a 25%-area square crop spans half the width: green (rows) covers half the 0-1 range
    green_span = out[:, 1].amax(dim=(1, 2)) - out[:, 1].amin(dim=(1, 2))
    assert torch.allclose(green_span, torch.full_like(green_span, 0.5), atol=0.03)
    # and crops land at different places
    assert float(out[:, 1].mean(dim=(1, 2)).std()) > 0.02


def test_bvlc_conv1_start_is_the_released_filters_for_our_normalisation():
    model = build("paper", 5)
    mean, std = [0.45, 0.42, 0.30], [0.28, 0.25, 0.27]
    bvlc.init_conv1_from_bvlc(model, mean, std)
    w, b = bvlc.conv1()
    x = torch.rand(2, 3, 227, 227, generator=torch.Generator().manual_seed(0))
    z = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    caffe = x * 255 - torch.tensor(bvlc.CAFFE_MEAN_255).view(1, 3, 1, 1)
    ours = model.param_layer("conv1")(z)                                      # (2, 96, 55, 55)
    theirs = F.conv2d(caffe, w, b, stride=4)
    ratio = ours / theirs
    mask = theirs.abs() > 1.0
    scale = ratio[mask].median()
    assert scale > 0
    assert torch.allclose(ours[mask], theirs[mask] * scale, rtol=1e-3, atol=1e-4)
    # brought to the size of PyTorch's default init
    assert abs(model.param_layer("conv1").weight.std().item() * (3 * 363) ** 0.5 - 1.0) < 0.05


def test_low_resolution_training_still_evaluates_at_227(image_folder, tmp_path):
    """Two epochs (131 px then 227 px); the checkpoint then runs at 227 with the paper's shapes."""
    cfg = TrainConfig(data=str(image_folder), mode="scratch", epochs=2, batch_size=8, device="cpu",
                      out=str(tmp_path / "run"), init_conv1="bvlc")
    r = train(cfg)
    assert [row["size"] for row in r.history] == [131, 227]
    model, meta = load_checkpoint(r.checkpoint)
    assert meta["input_size"] == 227 and meta["source"].startswith(bvlc.BVLC_SOURCE)
    x = torch.zeros(1, 3, 227, 227)
    logits, acts = model(x, return_activations=True)
    assert logits.shape == (1, 3)
    sides = {n: acts[n].shape[-1] for n in ("conv1", "pool1", "pool2", "pool5")}
    assert sides == dict(conv1=55, pool1=27, pool2=13, pool5=6)
    # BVLC's conv1 stayed fixed while the rest trained
    start = build("paper", 3)
    bvlc.init_conv1_from_bvlc(start, meta["mean"], meta["std"])
    assert torch.equal(model.param_layer("conv1").weight, start.param_layer("conv1").weight)
    assert not torch.equal(model.param_layer("fc8").weight, start.param_layer("fc8").weight)


def test_estimate_is_measured_and_grows_with_epochs():
    cfg = TrainConfig(mode="scratch", epochs=4, batch_size=16, device="cpu", data=".")
    e4 = estimate(cfg, n_images=80, classes=5)
    assert isinstance(e4.seconds, float) and e4.seconds > 0 and e4.measured_steps > 0
    assert e4.sizes == progressive_sizes(4, 227) and len(e4.per_epoch) == 4
    assert set(e4.step_seconds) == set(e4.sizes) and all(t > 0 for t in e4.step_seconds.values())
    # each epoch is its own size's measured step time x 4 steps (64 training images / 16) + validation;
    # which size is dearer is left to the clock (AdamW over 60M weights dominates a batch of 16 on a CPU,
    # so 131 px and 227 px steps differ by less than a busy machine's noise)
    for size, epoch_s in zip(e4.sizes, e4.per_epoch):
        assert epoch_s == pytest.approx(e4.step_seconds[size] * 4 + e4.val_seconds)
    assert e4.seconds == pytest.approx(sum(e4.per_epoch))
    assert re.fullmatch(r"about \d+(\.\d)? (s|min|h) on this machine", e4.text)
    again = estimate(cfg, n_images=80, classes=5)                    # step times are cached: nothing re-measured
    assert again.measured_steps == 0 and again.seconds == e4.seconds
    e8 = estimate(TrainConfig(mode="scratch", epochs=8, batch_size=16, device="cpu", data="."), 80, 5)
    assert e8.seconds > e4.seconds


def test_cli_refuses_finetune_without_weights_before_decoding(image_folder, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))        # no cached ImageNet weights here

    def no_decoding(*a, **k):
        raise AssertionError("decoded the folder before checking the flags")

    monkeypatch.setattr(D, "decode_folder", no_decoding)
    assert main(["--data", str(image_folder)]) == 2
    err = capsys.readouterr().err
    assert "fine-tuning needs starting weights" in err and "--mode scratch" in err
    assert main(["--data", str(image_folder), "--weights", str(tmp_path / "missing.safetensors")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_bad_init_conv1_combinations_are_refused():
    with pytest.raises(ConfigError, match="init-conv1"):
        train(TrainConfig(mode="scratch", init_conv1="bvlc", width=0.5, data="."))
    with pytest.raises(ConfigError, match="init-conv1"):
        train(TrainConfig(mode="scratch", init_conv1="imagenet", data="."))
