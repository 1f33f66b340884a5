"""app.classify's handlers are plain functions of the page: called here without a browser or a server."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app import classify as H
from app.page import build_app


@pytest.fixture(scope="module")
def page():
    demo = build_app()                                           # the shipped flowers model; no server
    yield demo.page
    demo.compute.shutdown()


@pytest.fixture
def photo(tmp_path):
    rgb = np.zeros((256, 256, 3), np.uint8)
    rgb[..., 0] = np.linspace(0, 255, 256, dtype=np.uint8)[None, :]   # a red ramp
    path = tmp_path / "ramp.png"
    Image.fromarray(rgb).save(path)
    return str(path)


def test_classify_and_the_panel_rule(page, photo):
    top5 = H.classify(page, photo, "flowers")
    assert len(top5) == 5 and abs(sum(top5.values()) - 1) < 0.2 and set(top5) <= set(page.registry.meta_of("flowers")["classes"])
    # saliency at conv5 comes from the panel: the /explain map equals the panel's own saliency
    loaded = page.registry.get("flowers")
    x, _ = loaded.prepare(photo)
    p = page.compute.panel(loaded, x)
    _, npy = H.explain_api(page, photo, "saliency", "flowers")
    np.testing.assert_allclose(np.load(npy), p.saliency, rtol=1e-5, atol=1e-7)
    assert H.in_panel("gradcam", "conv5") and not H.in_panel("gradcam", "conv3")
    assert not H.in_panel("integrated_gradients", "conv5")
    # Grad-CAM's panel stops its backward at conv5: the same Grad-CAM, no saliency computed
    cam = page.compute.panel(loaded, x, saliency=False, acts=False)
    assert cam.saliency is None and cam.acts is None and cam.target == p.target and "conv5" in p.acts
    np.testing.assert_allclose(cam.gradcam, p.gradcam, rtol=1e-4, atol=1e-6 * p.gradcam.max())
    _, npy = H.explain_api(page, photo, "gradcam", "flowers")
    np.testing.assert_allclose(np.load(npy), p.gradcam, rtol=1e-4, atol=1e-6 * p.gradcam.max())


def test_a_slow_map_is_refused_before_the_photo_is_decoded(page, tmp_path):
    from alexnet.errors import UserError
    from app.lanes import Busy
    bad = tmp_path / "not-a-photo.jpg"
    bad.write_bytes(b"this is not a JPEG")
    limit, page.compute.lanes.max_slow = page.compute.lanes.max_slow, 0      # as if eight slow maps waited
    try:
        with pytest.raises(Busy):                    # the refusal comes first: the bytes were never decoded
            H.explain_api(page, str(bad), "integrated_gradients", "flowers")
        with pytest.raises(UserError) as e:          # a one-pass map is never refused: the photo is read
            H.explain_api(page, str(bad), "saliency", "flowers")
        assert not isinstance(e.value, Busy)
    finally:
        page.compute.lanes.max_slow = limit


def test_scratch_files_are_grouped_by_minute_and_old_minutes_go(page, tmp_path):
    from dataclasses import replace
    mine = replace(page, tmp=tmp_path)
    t = 1_000_000 * 60.0
    a, b = mine.scratch_file("a.png", now=t), mine.scratch_file("a.png", now=t + 30)
    assert a != b and a.parent.parent == b.parent.parent == tmp_path / str(int(t // 60))   # fresh folders, one minute
    a.write_bytes(b"x")
    later = mine.scratch_file("c.npy", now=t + 5 * 60)          # within keep_s (10 min): the old file stays
    assert a.exists() and sorted(p.name for p in tmp_path.iterdir()) == sorted({a.parent.parent.name,
                                                                                  later.parent.parent.name})
    mine.scratch_file("d.npy", now=t + 11 * 60)                  # past it: that minute's folder is removed
    assert not a.exists() and not (tmp_path / str(int(t // 60))).exists() and later.parent.is_dir()


def test_an_upload_yields_the_panel_first_and_a_slow_method_second(page, photo):
    frames = list(H.on_upload(page, photo, "flowers", "integrated_gradients", "conv5"))
    assert len(frames) == 2                                      # what is ready, then the slow map
    first, second = frames
    assert first[0] == photo and len(first[1]) == 5 and first[2] is None     # top-5 now, IG not yet
    assert second[2] is not None and np.load(second[5]).shape == (227, 227)   # IG's overlay and raw map
    frames = list(H.on_upload(page, photo, "flowers", "saliency", "conv5"))
    assert len(frames) == 1 and frames[0][2] is not None                      # the panel is the whole answer
