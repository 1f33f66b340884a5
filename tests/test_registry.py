"""Which model the app offers first, what its banner says, and ImageNet weights online and offline."""
from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
import torch

from alexnet import weights as W
from alexnet.download import DownloadError, download
from alexnet.model import build
from app.state import FLOWERS, GIVEN, IMAGENET, UNTRAINED, Registry
from conftest import BVLC_CONV1, ROOT

from app_server import UNREACHABLE


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A fresh torch hub (no ImageNet weights cached) whose download cannot reach anything."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("ALEXNET_IMAGENET_URL", UNREACHABLE)
    return tmp_path


def keys(reg: Registry) -> list[str]:
    return [k for _, k in reg.choices()]


def test_fresh_cache_defaults_to_the_shipped_flowers_model(offline):
    reg = Registry(checkpoints_dir=offline / "ckpts", device="cpu")
    assert keys(reg) == [FLOWERS, IMAGENET, UNTRAINED]
    assert reg.default_key() == FLOWERS
    banner = reg.banner(FLOWERS)
    assert "daisy, dandelion, roses, sunflowers, tulips" in banner and "233 MB" in banner
    assert "untrained" not in banner.lower()
    loaded = reg.get()
    assert loaded.key == FLOWERS and loaded.trained and loaded.notice == ""
    assert "Knows only 5 classes" in loaded.top5_note


def test_order_checkpoint_then_cached_imagenet_then_flowers(offline):
    hub = W.imagenet_weights_path()
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"stand-in: only its presence is read here")
    reg = Registry(checkpoints_dir=offline / "ckpts", device="cpu")
    assert keys(reg) == [IMAGENET, FLOWERS, UNTRAINED]
    m = build("paper", 2, width=0.25)
    W.save_checkpoint(offline / "ckpts" / "mine", m, W.make_meta(m, ["x", "y"], source="scratch"))
    assert keys(reg)[0] == "checkpoint:mine.safetensors"
    assert keys(Registry(weights_arg="untrained", checkpoints_dir=offline / "ckpts"))[0] == UNTRAINED
    assert keys(Registry(weights_arg=str(BVLC_CONV1), checkpoints_dir=offline / "ckpts"))[0] == GIVEN
    no_ship = Registry(checkpoints_dir=offline / "none", shipped=offline / "absent.safetensors")
    assert FLOWERS not in keys(no_ship)


def test_partial_file_is_marked_partly_trained(offline):
    reg = Registry(weights_arg=str(BVLC_CONV1), checkpoints_dir=offline / "ckpts", device="cpu")
    banner = reg.banner(GIVEN)
    assert "partly trained" in banner and "conv1" in banner and "fc8" in banner
    loaded = reg.get(GIVEN)
    assert "partly trained" in loaded.notice and "partly trained" in loaded.top5_note


def test_unreachable_imagenet_download_is_one_sentence(offline):
    reg = Registry(checkpoints_dir=offline / "ckpts", device="cpu")
    with pytest.raises(W.WeightsError) as e:
        reg.get(IMAGENET)
    msg = str(e.value)
    assert msg.startswith("Could not download torchvision's ImageNet weights (no network?")
    assert msg.endswith("Pick the flowers model, or start with --weights FILE.")
    assert not W.imagenet_weights_path().exists()


def test_download_checks_the_hash_and_writes_nothing_when_it_fails(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"weights" * 1000)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    seen = []
    out = download(src.as_uri(), tmp_path / "a" / "got.bin", sha256_prefix=digest[:8],
                   report=lambda done, total: seen.append(done), bar=False)
    assert out.read_bytes() == src.read_bytes() and seen[-1] == 7000
    with pytest.raises(DownloadError) as e:
        download(src.as_uri(), tmp_path / "b" / "bad.bin", sha256_prefix="00000000", bar=False)
    assert e.value.cause == "the downloaded file is damaged"
    assert not (tmp_path / "b" / "bad.bin").exists()


def test_imagenet_from_a_local_mirror_loads(offline, monkeypatch):
    """The same download path, fed from a local file: torchvision's layout and name, hash checked."""
    tv = build("torchvision", 1000, generator=torch.Generator().manual_seed(0))
    mirror = offline / "mirror.pth"
    torch.save(tv.state_dict(), mirror)
    prefix = hashlib.sha256(mirror.read_bytes()).hexdigest()[:8]
    named = mirror.rename(offline / f"alexnet-owt-{prefix}.pth")
    monkeypatch.setattr(W, "imagenet_weights_path", lambda: offline / "hub" / named.name)
    monkeypatch.setenv("ALEXNET_IMAGENET_URL", named.as_uri())
    loaded = Registry(checkpoints_dir=offline / "ckpts", device="cpu").get(IMAGENET)
    assert loaded.meta["arch"] == "torchvision" and len(loaded.meta["classes"]) == 1000
    assert torch.equal(loaded.model.param_layer("fc8").bias, tv.param_layer("fc8").bias)


def test_cli_weights_imagenet_offline_exits_with_the_sentence(offline):
    env = {"TORCH_HOME": str(offline / "torch"), "ALEXNET_IMAGENET_URL": UNREACHABLE,
           "ALEXNET_CACHE": str(offline / "cache"), "PATH": "/usr/bin:/bin", "GRADIO_ANALYTICS_ENABLED": "False"}
    r = subprocess.run([sys.executable, str(ROOT / "app" / "main.py"), "--weights", "imagenet", "--port", "9"],
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    assert "Could not download torchvision's ImageNet weights (no network?" in r.stderr
    assert "Traceback" not in r.stderr

