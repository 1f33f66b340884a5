"""The app's public API, called the way a script would: gradio_client against the real server.

The session's `app_server` starts with a fresh cache, so its default is the flowers model shipped
in assets/; the untrained paper model (1000 ImageNet classes, random weights) is one key away.
The tests check the *shape* of the answers (labels, confidences, pictures), not their content.
"""
from __future__ import annotations

import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from alexnet import weights as W

gradio_client = pytest.importorskip("gradio_client")
from gradio_client import Client, handle_file  # noqa: E402
from gradio_client.exceptions import AppError  # noqa: E402

IMAGENET_CLASSES = set(W.imagenet_classes())
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
def test_explain_returns_a_picture_and_its_raw_map(client, sample_jpeg, method):
    overlay, npy = client.predict(handle_file(str(sample_jpeg)), method, api_name="/explain")
    pic = _assert_picture(overlay)
    m = np.load(npy, allow_pickle=False)
    assert m.dtype == np.float32 and m.shape == (227, 227) == pic.shape[:2] and m.min() >= 0 and m.max() > 0


def test_explain_saliency_and_gradcam_differ(client, sample_jpeg):
    a = _assert_picture(client.predict(handle_file(str(sample_jpeg)), "saliency", api_name="/explain")[0])
    b = _assert_picture(client.predict(handle_file(str(sample_jpeg)), "gradcam", api_name="/explain")[0])
    assert a.shape != b.shape or np.abs(a - b).mean() > 1.0, "saliency and Grad-CAM gave the same picture"


def test_explain_takes_a_target_class_and_a_gradcam_layer_by_name(client, sample_jpeg):
    params = [p["parameter_name"] for p in client.view_api(print_info=False, return_format="dict")
              ["named_endpoints"]["/explain"]["parameters"]]
    assert params[3:] == ["target", "layer"]
    f = handle_file(str(sample_jpeg))
    maps = {t: np.load(client.predict(f, "saliency", target=t, api_name="/explain")[1]) for t in ("roses", "daisy")}
    assert maps["roses"].shape == maps["daisy"].shape == (227, 227)
    assert np.abs(maps["roses"] - maps["daisy"]).mean() > 1e-3 * maps["roses"].mean()   # two classes, two maps
    by_index = np.load(client.predict(f, "saliency", target="2", api_name="/explain")[1])   # 'roses' is class 2
    np.testing.assert_array_equal(by_index, maps["roses"])
    fine = np.load(client.predict(f, "gradcam", target="roses", layer="conv1", api_name="/explain")[1])
    coarse = np.load(client.predict(f, "gradcam", target="roses", layer="conv5", api_name="/explain")[1])
    assert fine.shape == coarse.shape == (227, 227) and not np.allclose(fine, coarse)
    for bad, words in ((dict(target="cactus"), "no class 'cactus'"), (dict(layer="fc7"), "fc7.*conv1"), (dict(layer="all"), "layer must be one of conv1")):
        with pytest.raises(AppError, match=words):
            client.predict(f, "saliency", api_name="/explain", **bad)


def test_a_checkpoint_written_after_start_up_is_accepted_by_name(client, app_server, sample_jpeg):
    """The model list was frozen at start-up; the API takes any checkpoint present now."""
    import torch
    from alexnet.model import build
    from alexnet.weights import make_meta, save_checkpoint
    model = build("paper", 2, width=0.125, generator=torch.Generator().manual_seed(0))
    ckpts = app_server["work"] / "cache" / "checkpoints"
    save_checkpoint(ckpts / "late-run.safetensors", model, make_meta(model, ["cats", "dogs"], [0.5] * 3, [0.25] * 3,
                                                                     input_size=99, source="test"))
    try:
        out = client.predict(handle_file(str(sample_jpeg)), "checkpoint:late-run.safetensors", api_name="/classify")
        assert {c["label"] for c in out["confidences"]} == {"cats", "dogs"}
        overlay, npy = client.predict(handle_file(str(sample_jpeg)), "saliency", "checkpoint:late-run.safetensors",
                                      target="dogs", api_name="/explain")
        assert np.load(npy).shape == (99, 99)
        with pytest.raises(AppError, match="unknown model"):
            client.predict(handle_file(str(sample_jpeg)), "saliency", "nonsense", api_name="/explain")
    finally:                      # later tests expect the shipped model to stay the newest default
        for f in ckpts.glob("late-run.*"):
            f.unlink()


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


def test_explain_npy_is_exactly_the_map_the_library_computes(client, sample_jpeg):
    """The downloaded array is the shown map: the same numbers viz.attribution.explain gives for the
    shipped model, the same image and the same class, computed here in the test process."""
    from alexnet.compact import SHIPPED
    from alexnet.images import preprocess
    from alexnet.weights import load
    from viz.attribution import explain
    _, npy = client.predict(handle_file(str(sample_jpeg)), "saliency", target="tulips", api_name="/explain")
    model, meta = load(SHIPPED)
    x = preprocess(str(sample_jpeg), meta["input_size"], meta["mean"], meta["std"])
    want = explain(model.eval(), x, meta["classes"].index("tulips"), "saliency", meta=meta).heatmap
    np.testing.assert_allclose(np.load(npy), want, rtol=1e-4, atol=1e-6)


def test_saliency_is_not_queued_behind_integrated_gradients(client, sample_jpeg):
    """Two IG requests (8 passes of 8 each here) are in flight; a saliency request sent after them
    comes back while the second IG is still running (app.lanes). With one queue it came back last."""
    slow = [client.submit(handle_file(str(sample_jpeg)), "integrated_gradients", api_name="/explain") for _ in range(2)]
    time.sleep(0.3)
    fast = client.submit(handle_file(str(sample_jpeg)), "saliency", api_name="/explain")
    overlay, npy = fast.result(timeout=120)
    assert not slow[1].done(), "the saliency request waited for both Integrated Gradients requests"
    _assert_picture(overlay)
    for job in slow:
        assert np.load(job.result(timeout=300)[1]).shape == (227, 227)


def test_concurrent_identical_requests_are_batched_and_each_gets_its_own_files(client, sample_jpeg):
    """Eight visitors explain the same photo at once: one or two batched passes, and every visitor
    downloads a whole overlay and the map the library computes for that photo alone."""
    jobs = [client.submit(handle_file(str(sample_jpeg)), method, api_name="/explain")
            for method in ("saliency", "gradcam") * 4]
    results = [job.result(timeout=120) for job in jobs]
    first = {m: np.load(results[i][1]) for i, m in enumerate(("saliency", "gradcam"))}
    for i, (overlay, npy) in enumerate(results):
        _assert_picture(overlay)
        want = first["saliency" if i % 2 == 0 else "gradcam"]
        np.testing.assert_allclose(np.load(npy), want, rtol=1e-3, atol=1e-6 * want.max())


def test_issue_24s_endpoints_take_the_photo_as_a_file(client):
    """/fool, /concepts and /compare_models: the page's buttons read the visitor's upload, the API takes a file."""
    from conftest import held_out
    rose = handle_file(held_out("roses"))
    out = client.predict(rose, "flowers", "pgd", 8, "tulips", 10, api_name="/fool")
    original, changed, change, cam_before, cam_after, before, after, text, png = out
    assert before["label"] == "roses" and after["label"] == "tulips" and "now says **tulips**" in text
    from PIL import Image
    a, b = (np.asarray(Image.open(p).convert("RGB"), dtype=int) for p in (original, changed))
    assert a.shape == b.shape == (256, 256, 3) and np.abs(a - b).max() <= 8                 # within 8/255
    again = client.predict(handle_file(png), "flowers", api_name="/classify")             # the PNG, uploaded again
    assert again["label"] == "tulips"
    for p in (change, cam_before, cam_after):
        _assert_picture(p)

    strip, seen, dictionary, text = client.predict(rose, "flowers", "", 4, api_name="/concepts")
    assert text.startswith("For **roses**") and _assert_picture(dictionary).shape[0] == 13 * 24
    _assert_picture(strip), _assert_picture(seen)

    out = client.predict(rose, "flowers", "untrained", "saliency", "", api_name="/compare_models")
    top_a, line_a, top_b, line_b = out[0], out[4], out[5], out[9]
    assert top_a["label"] == "roses" and f"says **{top_b['label']}**" in line_b and "untrained" in line_b.lower()
    assert top_b["label"] in IMAGENET_CLASSES and "roses" in line_a
    for p in out[1:4] + out[6:9]:
        _assert_picture(p)
