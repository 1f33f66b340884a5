import hashlib
import io
import os
import tarfile

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet import data as D
from conftest import make_image_folder


def _known(b=64, c=3, h=12, w=12):
    """Every pixel of every image a different value, so a crop pins down where it came from."""
    return torch.arange(b * c * h * w, dtype=torch.int64).view(b, c, h, w)


def test_random_crop_flip_shapes_positions_and_flips():
    x = _known()
    out = D.random_crop_flip(x, 7, torch.Generator().manual_seed(0))
    assert out.shape == (64, 3, 7, 7) and out.dtype == x.dtype
    flips, tops = 0, set()
    for i in range(64):
        found = [(t, l, f) for t in range(6) for l in range(6) for f in (False, True)
                 if torch.equal(out[i], x[i, :, t:t + 7, l:l + 7].flip(-1) if f else x[i, :, t:t + 7, l:l + 7])]
        assert len(found) == 1, i          # every output is exactly one window of its own image, maybe mirrored
        flips += found[0][2]
        tops.add(found[0][0])
    assert 16 < flips < 48 and len(tops) >= 4   # flips are ~1/2, offsets spread over the range
    again = D.random_crop_flip(x, 7, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    with pytest.raises(ValueError, match="cannot crop 13x13"):
        D.random_crop_flip(x, 13)


def test_center_crop_and_normalize():
    x = _known(1, 3, 6, 6)
    assert torch.equal(D.center_crop(x, 4), x[..., 1:5, 1:5])
    u = torch.full((2, 3, 4, 4), 255, dtype=torch.uint8)
    y = D.normalize(u, (0.5, 0.5, 0.0), (0.5, 0.25, 1.0))
    assert y.dtype == torch.float32 and torch.allclose(y[:, 0], torch.ones(1)) and torch.allclose(y[:, 1], torch.full((1,), 2.0))
    assert torch.allclose(y[:, 2], torch.ones(1))
    assert torch.allclose(D.normalize(u.float() / 255, (0.5, 0.5, 0.0), (0.5, 0.25, 1.0)), y)


def test_pca_lighting_shifts_colour_with_the_data_covariance():
    # Pixels drawn with a known RGB covariance: rgb_stats must find it, and the lighting shifts
    # must have covariance std^2 * C, be constant within an image, and average to zero.
    g = torch.Generator().manual_seed(0)
    a = torch.tensor([[0.10, 0.00, 0.00], [0.08, 0.05, 0.00], [0.06, 0.02, 0.03]])
    cov = a @ a.T
    px = 0.5 + torch.randn(40_000, 3, generator=g) @ a.T                      # (P, 3)
    imgs = (px.clamp(0, 1) * 255).round().to(torch.uint8).T.reshape(3, 100, 20, 20).transpose(0, 1)  # (100, 3, 20, 20)
    st = D.rgb_stats(imgs)
    assert torch.allclose(st["mean"], torch.full((3,), 0.5), atol=0.01)
    assert torch.allclose(st["std"], cov.diagonal().sqrt(), rtol=0.05)
    assert torch.allclose(st["eigvecs"] @ torch.diag(st["eigvals"]) @ st["eigvecs"].T, cov, atol=1e-3)
    assert (st["eigvals"][:-1] >= st["eigvals"][1:]).all()

    base = torch.rand(4000, 3, 4, 4, generator=g)
    out = D.pca_lighting(base, st["eigvals"], st["eigvecs"], 0.1, torch.Generator().manual_seed(1))
    shift = out - base
    assert torch.allclose(shift, shift[..., :1, :1].expand_as(shift), atol=1e-6)  # one shift per image
    s = shift[:, :, 0, 0].double()                                                # (B, 3)
    assert s.mean(0).abs().max() < 0.003
    assert torch.allclose(torch.cov(s.T), 0.01 * cov.double(), atol=1.5e-5, rtol=0.15)


def test_stratified_split_is_deterministic_and_per_class():
    labels = torch.tensor([0] * 10 + [1] * 20 + [2] * 5 + [3])
    tr, va = D.stratified_split(labels, 0.2, seed=3)
    tr2, va2 = D.stratified_split(labels.tolist(), 0.2, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(va, va2)
    assert not torch.equal(va, D.stratified_split(labels, 0.2, seed=4)[1])
    assert sorted(tr.tolist() + va.tolist()) == list(range(36))
    assert torch.bincount(labels[va], minlength=4).tolist() == [2, 4, 1, 0]   # the single image stays in train
    sub = D.stratified_subset(labels, 18, seed=0)
    assert len(sub) == 18 and len(set(sub.tolist())) == 18
    counts = torch.bincount(labels[sub], minlength=4)
    assert all(abs(counts[c].item() - n / 2) <= 1 for c, n in enumerate([10, 20, 5, 1]))   # in proportion
    assert torch.equal(D.stratified_subset(labels, 18, seed=0), sub)
    assert torch.equal(D.stratified_subset(labels, None), torch.arange(36))


def test_decode_folder_skips_corrupt_files_and_caches(tmp_path):
    root = make_image_folder(tmp_path / "imgs", per_class=3, size=40)
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    (root / "b" / "notes.txt").write_text("not an image extension: ignored")
    wide = np.zeros((30, 90, 3), np.uint8)
    wide[:, 30:60] = (0, 255, 0)                                  # the centre third is green
    Image.fromarray(wide).save(root / "c" / "wide.png")
    calls = []
    d = D.decode_folder(root, size=24, progress=lambda done, total: calls.append((done, total)))
    assert d.images.shape == (10, 3, 24, 24) and d.images.dtype == torch.uint8
    assert d.classes == ["a", "b", "c"] and d.labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 2]
    assert len(d.skipped) == 1 and d.skipped[0][0].endswith("broken.jpg") and "damaged" in d.skipped[0][1]
    assert str(root / "b" / "broken.jpg") not in d.paths and calls[-1] == (11, 11)
    green = d.images[d.paths.index(str(root / "c" / "wide.png"))]
    assert (green[1] > 250).all() and (green[0] < 5).all()      # shorter side to 24, then the centre crop
    assert d.images[0, 0].float().mean() > 120                  # class a is red in make_image_folder

    again = D.decode_folder(root, size=24)
    assert "cache_file" in again.extra and torch.equal(again.images, d.images)
    assert again.paths == d.paths and again.skipped == d.skipped and again.key == d.key
    os.utime(root / "a" / "a_0.jpg", ns=(1, 1))                 # touching a file invalidates the cache
    assert D.decode_folder(root, size=24).key != d.key
    assert D.decode_folder(root, size=32).images.shape[-1] == 32


def test_folder_errors_name_the_path(tmp_path, monkeypatch):
    with pytest.raises(D.DataError, match=r"missing.*ALEXNET_DATA"):
        D.find_data_dir(str(tmp_path / "missing"))
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path / "gone"))
    with pytest.raises(D.DataError, match=r"\$ALEXNET_DATA points at .*gone"):
        D.find_data_dir()
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(D.DataError, match="holds no images"):
        D.decode_folder(tmp_path / "empty")
    monkeypatch.setenv("ALEXNET_DATA", str(tmp_path))
    assert D.find_data_dir() == tmp_path and D.find_data_dir(str(tmp_path / "empty")) == tmp_path / "empty"
    # (the rest of the order, ending in the shipped pack: tests/test_first_use.py)


def _tgz(path, entries):
    with tarfile.open(path, "w:gz") as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def _jpeg(arr):
    b = io.BytesIO()
    Image.fromarray(arr).save(b, "JPEG", quality=95)
    return b.getvalue()


def test_prepare_archive_and_checked_download_from_a_local_tgz(tmp_path):
    tall = np.zeros((300, 100, 3), np.uint8)
    tall[100:200] = (250, 250, 250)                               # centre third white, top and bottom black
    tgz = _tgz(tmp_path / "flower_photos.tgz", [
        ("flower_photos/LICENSE.txt", b"CC-BY"),
        ("flower_photos/daisy/one.jpg", _jpeg(tall)),
        ("flower_photos/daisy/two.jpg", _jpeg(np.full((200, 260, 3), 90, np.uint8))),
        ("flower_photos/roses/bad.jpg", b"\xff\xd8\xff\xe0 truncated"),
        ("flower_photos/roses/ok.jpg", _jpeg(np.full((64, 64, 3), 200, np.uint8))),
        ("flower_photos/../../escape/x.jpg", _jpeg(np.full((64, 64, 3), 1, np.uint8))),
    ])
    sha = hashlib.sha256(tgz.read_bytes()).hexdigest()
    url = tgz.as_uri()                                            # file:// — no network in tests
    with pytest.raises(D.DataError, match="downloaded file is damaged"):
        D.download_flowers(tmp_path / "dl", progress=False, url=url, sha256="0" * 64)
    assert not (tmp_path / "dl" / "flower_photos.tgz").exists() and not list((tmp_path / "dl").glob("*.tmp"))

    out = D.download_flowers(tmp_path / "dl", progress=False, url=url, sha256=sha)
    assert out == tmp_path / "dl" / "flower_photos_256" and (out / "LICENSE.txt").read_bytes() == b"CC-BY"
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*.jpg"))
    assert files == ["daisy/one.jpg", "daisy/two.jpg", "roses/ok.jpg"]
    assert not (tmp_path / "escape").exists() and not (tmp_path / "dl" / "escape").exists()
    one = np.asarray(Image.open(out / "daisy" / "one.jpg"))
    assert one.shape == (256, 256, 3) and one.min() > 200          # the white centre survived, black ends cropped
    assert Image.open(out / "roses" / "ok.jpg").size == (256, 256)  # small images are scaled up to 256
    import json
    report = json.loads((out / D.PREPARED_MARK).read_text())
    assert report["images"] == 3 and [p for p, _ in report["skipped"]] == [
        "flower_photos/roses/bad.jpg", "flower_photos/../../escape/x.jpg"]
    tgz.unlink()                                                   # prepared once: no second download
    assert D.download_flowers(tmp_path / "dl", progress=False, url=url, sha256=sha) == out


def test_prepare_archive_refuses_an_archive_without_images(tmp_path):
    tgz = _tgz(tmp_path / "x.tgz", [("top/readme.md", b"hi")])
    with pytest.raises(D.DataError, match="no readable images"):
        D.prepare_archive(tgz, tmp_path / "out", progress=False)
    (tmp_path / "junk.tgz").write_bytes(b"not gzip")
    with pytest.raises(D.DataError, match="not a readable .tgz"):
        D.prepare_archive(tmp_path / "junk.tgz", tmp_path / "out", progress=False)


def test_real_flowers_listing(flowers_dir):
    paths, labels, classes = D.list_images(flowers_dir)
    assert classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"] and len(paths) == 3667
