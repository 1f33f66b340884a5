"""The app's public API, called the way a script would: gradio_client against the real server.

The session's `app_server` starts with a fresh cache, so its default is the flowers model shipped
in assets/; the untrained paper model (1000 ImageNet classes, random weights) is one key away.
The tests check the *shape* of the answers (labels, confidences, pictures), not their content.
"""
from __future__ import annotations

import urllib.request
from pathlib import Path

import numpy as np
import pytest

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
IMAGENET_CLASSES = set((ROOT / "assets" / "imagenet_classes.txt").read_text().splitlines())
FLOWER_CLASSES = {"daisy", "dandelion", "roses", "sunflowers", "tulips"}


@pytest.fixture(scope="module")
def client(app_server, tmp_path_factory):
    return Client(app_server["url"], verbose=False, download_files=str(tmp_path_factory.mktemp("api-downloads")))


def _assert_picture(path) -> np.ndarray:
    from PIL import Image
    assert path and Path(path).is_file(), f"expected an image file, got {path!r}"
    with Image.open(path) as im:
        im.load()
        arr = np.asarray(im.convert("RGB"), dtype=np.float32)
    assert arr.shape[0] >= 64 and arr.shape[1] >= 64, arr.shape
    assert arr.std() > 5.0, "the attribution picture is blank (one flat colour)"
    return arr


def test_home_page_is_served(app_server):
    with urllib.request.urlopen(app_server["url"], timeout=30) as r:
        assert r.status == 200
        html = r.read().decode("utf-8", "replace")
    assert "AlexNet Explainer" in html


def _check_top5(out, allowed: set[str]) -> list[str]:
    assert isinstance(out, dict), out
    conf = out["confidences"]
    assert len(conf) == 5
    labels = [c["label"] for c in conf]
    assert all(lbl in allowed for lbl in labels), labels
    assert len(set(labels)) == 5
    probs = [c["confidence"] for c in conf]
    assert all(0.0 <= p <= 1.0 for p in probs)
    assert sum(probs) <= 1.0 + 1e-6
    assert probs == sorted(probs, reverse=True)
    assert out["label"] == labels[0]
    return labels


def test_classify_default_is_the_shipped_flowers_model(client, sample_jpeg):
    out = client.predict(handle_file(str(sample_jpeg)), api_name="/classify")
    assert set(_check_top5(out, FLOWER_CLASSES)) == FLOWER_CLASSES    # it knows five classes: all five are listed
    assert sum(c["confidence"] for c in out["confidences"]) == pytest.approx(1.0, abs=1e-4)


def test_classify_untrained_returns_five_imagenet_labels(client, sample_jpeg):
    _check_top5(client.predict(handle_file(str(sample_jpeg)), "untrained", api_name="/classify"), IMAGENET_CLASSES)


def test_imagenet_without_network_is_one_sentence(client, sample_jpeg):
    """The test server's ImageNet URL is unreachable (tests never use the network)."""
    for api, args in (("/classify", ()), ("/explain", ("saliency",))):
        with pytest.raises(AppError) as e:
            client.predict(handle_file(str(sample_jpeg)), *args, "imagenet", api_name=api)
        msg = str(e.value)
        assert "Could not download torchvision's ImageNet weights (no network?" in msg, msg
        assert "Pick the flowers model, or start with --weights FILE." in msg
        assert "Something went wrong" not in msg


@pytest.mark.parametrize("method", ["saliency", "gradcam"])
def test_explain_returns_a_picture(client, sample_jpeg, method):
    path = client.predict(handle_file(str(sample_jpeg)), method, api_name="/explain")
    _assert_picture(path)


def test_explain_saliency_and_gradcam_differ(client, sample_jpeg):
    a = _assert_picture(client.predict(handle_file(str(sample_jpeg)), "saliency", api_name="/explain"))
    b = _assert_picture(client.predict(handle_file(str(sample_jpeg)), "gradcam", api_name="/explain"))
    assert a.shape != b.shape or np.abs(a - b).mean() > 1.0, "saliency and Grad-CAM gave the same picture"


def test_unknown_method_is_a_clear_error(client, sample_jpeg):
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(sample_jpeg)), "bogus", api_name="/explain")
    msg = str(e.value)
    assert "bogus" in msg and "saliency" in msg, msg   # names the bad value and what is allowed


def test_text_file_named_jpg_is_refused_and_server_lives_on(client, tmp_path, sample_jpeg):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("this is a text file, not a photo\n" * 20)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(fake)), api_name="/classify")
    msg = str(e.value)
    assert "not an image" in msg, msg
    assert "Traceback" not in msg
    with pytest.raises(AppError, match="not an image"):
        client.predict(handle_file(str(fake)), "saliency", api_name="/explain")
    # the server is still answering
    out = client.predict(handle_file(str(sample_jpeg)), api_name="/classify")
    assert len(out["confidences"]) == 5
