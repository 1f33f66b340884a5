"""Feature visualisation: the optimised image really excites its unit, reproducibly, and leaves the model alone.

One run on the real-size paper model at the default settings (the app's case and its CPU budget);
everything else with few steps on small pictures: a width-1/8 random model, or the shipped flowers
model where the objective needs trained weights to depend on the image (fc6..fc8).
"""
from __future__ import annotations

import hashlib
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.errors import OptionError
from alexnet.model import build
from alexnet.compact import SHIPPED as FLOWERS
from alexnet.weights import IMAGENET_MEAN, IMAGENET_STD, load
from viz.feature_vis import SIZE, STEPS, maximise, unit_activation

REAL_UNIT = 3    # conv5 channel 3 of build("paper", 1000, seed 0): starts slightly positive on the grey start
SUNFLOWERS = 3   # a class of the shipped flowers model
SMALL = dict(steps=8, size=96)  # 96 px still leaves pool5 a 2x2 map on the paper layout


def checksum(model: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def hook_count(model: torch.nn.Module) -> int:
    return sum(len(m._forward_hooks) for m in model.modules())


def normalise(x: torch.Tensor, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> torch.Tensor:
    """(B, 3, H, W) in [0, 1] -> the model's input."""
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def real():
    model = build("paper", 1000, generator=torch.Generator().manual_seed(0)).train()  # train mode: must come back
    before = checksum(model)
    calls = []
    vis = maximise(model, "conv5", REAL_UNIT, progress=lambda step, steps: calls.append((step, steps)))
    after = dict(checksum=checksum(model), training=model.training)
    noise = torch.rand(16, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))  # (16, 3, S, S) in [0, 1]
    return dict(model=model, before=before, after=after, vis=vis, calls=calls,
                noise=unit_activation(model.eval(), "conv5", REAL_UNIT, normalise(noise)))


@pytest.fixture(scope="module")
def flowers():
    """The shipped, trained 5-class model: a random net's logits barely depend on the image."""
    model, meta = load(FLOWERS)
    assert meta["classes"][SUNFLOWERS] == "sunflowers"
    return model, meta


@pytest.fixture(scope="module")
def small():
    return build("paper", 10, width=0.125, generator=torch.Generator().manual_seed(0)).eval()


def test_default_settings_raise_a_conv5_unit_tenfold(real):
    vis = real["vis"]
    assert vis.start_activation > 0, "pick a unit that starts positive, or the ratio means nothing"
    assert vis.final_activation >= 10 * vis.start_activation, (vis.start_activation, vis.final_activation)


def test_the_rise_dwarfs_what_random_images_do(real):
    """Scale-free: a random-init unit's pre-ReLU value is mostly its bias, so the ratio above depends on
    the unit (5x-30x over conv5's first units); the rise beats random pixels by tens of their spreads."""
    vis, noise = real["vis"], real["noise"]
    assert vis.final_activation > noise.max().item()
    assert vis.final_activation - vis.start_activation >= 10 * noise.std().item()


def test_the_run_is_recorded(real):
    vis = real["vis"]
    assert (vis.layer, vis.unit, vis.steps, vis.cancelled) == ("conv5", REAL_UNIT, STEPS, False)
    assert len(vis.curve) == STEPS and vis.curve[-1] > vis.curve[0]


def test_the_image_is_rgb_at_the_requested_size(real):
    image = real["vis"].image
    assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (SIZE, SIZE)


def test_the_model_is_left_as_it_was(real):
    model = real["model"]
    assert real["after"]["checksum"] == real["before"]
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())
    assert real["after"]["training"]
    assert hook_count(model) == 0
    assert model(torch.zeros(1, 3, 227, 227)).shape == (1, 1000)  # an ordinary forward runs to the end again


def test_progress_is_reported_up_to_the_last_step(real):
    steps = [s for s, _ in real["calls"]]
    assert steps == sorted(steps) and steps[-1] == STEPS and {t for _, t in real["calls"]} == {STEPS}


def test_the_same_seed_gives_the_same_image_and_another_seed_another(small):
    def run(seed):
        return maximise(small, "conv3", 1, generator=torch.Generator().manual_seed(seed), **SMALL).image.tobytes()
    assert run(0) == run(0)
    assert run(0) != run(1)


def test_the_default_generator_is_seeded(small):
    assert maximise(small, "conv2", 0, **SMALL).image.tobytes() == maximise(small, "conv2", 0, **SMALL).image.tobytes()


def test_a_class_objective_raises_that_logit(flowers):
    model, meta = flowers
    vis = maximise(model, "fc8", SUNFLOWERS, steps=16, size=96, mean=meta["mean"], std=meta["std"])
    x = torch.from_numpy(np.array(vis.image)).permute(2, 0, 1)[None].float() / 255  # (1, 3, H, W) in [0, 1]
    with torch.no_grad():
        logits = model(normalise(x, meta["mean"], meta["std"]))[0]                   # (5,)
    assert vis.final_activation >= vis.start_activation + 2, (vis.start_activation, vis.final_activation)
    assert logits[SUNFLOWERS].item() == pytest.approx(vis.final_activation, abs=0.1)  # the 8-bit image keeps the gain
    assert logits.argmax().item() == SUNFLOWERS


@pytest.mark.parametrize("layer, unit", [("fc6", 2), ("fc7", 5)])  # neurons that are alive on grey
def test_hidden_fc_neurons_rise_on_a_trained_model(flowers, layer, unit):
    model, meta = flowers
    vis = maximise(model, layer, unit, steps=16, size=96, mean=meta["mean"], std=meta["std"])
    assert vis.final_activation > vis.start_activation + 0.1


@pytest.mark.parametrize("layer", ["conv1", "pool1", "pool5"])
def test_other_layers_move_their_unit(small, layer):
    vis = maximise(small, layer, 2, **SMALL)
    assert vis.final_activation > vis.start_activation


@pytest.mark.parametrize("layer, unit, words", [
    ("conv9", 0, "unknown layer 'conv9'"),
    ("conv5", 32, "out of range for conv5: it has 32 units"),
    ("pool5", -1, "out of range for pool5"),
    ("fc8", 10, "it has 10 units, numbered 0 to 9"),
])
def test_bad_choices_raise_an_option_error_with_a_sentence(small, layer, unit, words):
    with pytest.raises(OptionError, match=words):
        maximise(small, layer, unit, **SMALL)
    assert hook_count(small) == 0


def test_cancel_returns_what_exists(small):
    stop = threading.Event()
    vis = maximise(small, "conv4", 0, steps=100, size=96, cancel=stop,
                   progress=lambda step, steps: step >= 8 and stop.set())
    assert vis.cancelled and vis.steps == 8 and len(vis.curve) == 8 and vis.image.size == (96, 96)
    calls = iter(range(100))
    vis = maximise(small, "conv4", 0, steps=100, size=96, cancel=lambda: next(calls) >= 3)
    assert vis.cancelled and vis.steps == 3
    assert hook_count(small) == 0


def test_a_failing_callback_still_removes_the_hook(small):
    def boom(step, steps):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        maximise(small, "conv2", 0, progress=boom, **SMALL)
    assert hook_count(small) == 0 and not any(p.grad is not None for p in small.parameters())
