"""python -m viz.explain_folder: maps, overlays and top5.csv for a whole folder, bad files skipped.

A tiny random paper AlexNet (width 1/8, 67 px input, 3 classes) saved as a checkpoint keeps the
module fast; its maps are noise, which is fine for checking that what is written is what
`viz.attribution.explain` shows.
"""
from __future__ import annotations

import contextlib
import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.images import open_image
from alexnet.model import build
from viz.attribution import METHODS, UNTRAINED_NOTICE, explain
from viz.explain_folder import get_args_parser, is_trained, main

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")  # Captum's "set requires_grad" notes

SIZE = 67
CLASSES = ["daisy", "roses", "tulips"]
IMAGES = ["sub/one.jpg", "sub/two.jpg", "top.png"]     # sorted order of the good files
# Occlusion is left out: at ~1 s an image on a busy CPU it would double the module's time, and the
# CLI reaches it by name exactly as the others (tests/test_attribution.py covers the method itself).
RUN = [m for m in METHODS if m != "occlusion"]
BROKEN = ["sub/broken.jpg", "sub/truncated.jpg"]


def picture(seed: int, w: int = 90, h: int = 80) -> Image.Image:
    """A smooth colour gradient plus texture: a real image with some structure to attribute."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx * 255 / w, yy * 255 / h, np.full((h, w), 128.0)], -1)
    return Image.fromarray((0.7 * base + rng.integers(0, 70, (h, w, 3))).clip(0, 255).astype(np.uint8))


def make_folder(root: Path) -> Path:
    (root / "sub").mkdir(parents=True)
    picture(0).save(root / "top.png")
    picture(1).save(root / "sub" / "one.jpg", quality=90)
    picture(2, 100, 70).save(root / "sub" / "two.jpg", quality=90)
    (root / "sub" / "broken.jpg").write_bytes(np.random.default_rng(3).bytes(2000))
    good = io.BytesIO()
    picture(4, 200, 200).save(good, "JPEG", quality=95)
    (root / "sub" / "truncated.jpg").write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    return root


def run(*argv) -> tuple[int, str]:
    """main(argv) in-process -> (exit code, stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in argv])
    return rc, err.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("explain_folder")
    model = build("paper", len(CLASSES), width=0.125, generator=torch.Generator().manual_seed(0))
    meta = W.make_meta(model, CLASSES, (0.5, 0.45, 0.4), (0.25, 0.25, 0.25), input_size=SIZE, source="test")
    ckpt = W.save_checkpoint(tmp / "tiny", model, meta)
    data = make_folder(tmp / "data")
    out = tmp / "out"
    rc, err = run(data, "--out", out, "--weights", ckpt, "--methods", ",".join(RUN), "--device", "cpu")
    return dict(ckpt=ckpt, data=data, out=out, rc=rc, err=err, tmp=tmp)


def test_every_image_gets_every_method_and_the_npy_is_the_shown_map(setup):
    assert setup["rc"] == 0, setup["err"]
    model, meta = W.load(setup["ckpt"])
    rows = {r["file"]: r for r in read_csv(setup["out"] / "top5.csv")}
    for name in IMAGES:
        stem = setup["out"] / Path(name).with_suffix("")
        target = CLASSES.index(rows[name]["target"])
        for m in RUN:
            shown = np.asarray(Image.open(f"{stem}.{m}.png"))
            heat = np.load(f"{stem}.{m}.npy")
            assert shown.shape == (SIZE, SIZE, 3)
            assert heat.dtype == np.float32 and heat.shape == (SIZE, SIZE)
            if name != IMAGES[0] and m not in ("saliency", "gradcam"):
                continue                    # every method on one image, the cheap two on all: keeps it fast
            e = explain(model, open_image(setup["data"] / name), target, m, meta=meta)
            np.testing.assert_allclose(heat, e.heatmap, rtol=1e-5, atol=1e-7, err_msg=f"{name} {m}")
            assert np.abs(shown.astype(int) - np.asarray(e.overlay, dtype=int)).max() <= 1, f"{name} {m}"
    assert not list(setup["out"].rglob("broken*")) and not list(setup["out"].rglob("truncated*"))


def test_top5_csv_one_row_per_image_sorted_and_explaining_the_top1(setup):
    rows = read_csv(setup["out"] / "top5.csv")
    assert [r["file"] for r in rows] == IMAGES
    assert list(rows[0]) == ["file", "target"] + [f"rank{r}_{c}" for r in (1, 2, 3) for c in ("class", "prob")]
    for r in rows:
        p = [float(r[f"rank{k}_prob"]) for k in (1, 2, 3)]
        assert p == sorted(p, reverse=True) and sum(p) <= 1 + 1e-5
        assert sorted(r[f"rank{k}_class"] for k in (1, 2, 3)) == sorted(CLASSES)
        assert r["target"] == r["rank1_class"]


def test_bad_files_are_listed_with_a_reason_and_the_untrained_model_is_flagged(setup):
    err = setup["err"]
    assert "skipped 2 file(s):" in err
    assert "sub/broken.jpg: broken.jpg is not an image" in err
    assert "sub/truncated.jpg: truncated.jpg is damaged or truncated" in err
    assert f"warning: {UNTRAINED_NOTICE}" in err


def test_target_by_name_or_index_changes_the_maps(setup):
    out_a, out_b = setup["tmp"] / "roses", setup["tmp"] / "tulips"
    for out, target in ((out_a, "ROSES"), (out_b, "2")):           # by name in any case, by index
        assert run(setup["data"], "--out", out, "--weights", setup["ckpt"], "--methods", "saliency",
                   "--target", target)[0] == 0
    assert {r["target"] for r in read_csv(out_a / "top5.csv")} == {"roses"}
    assert {r["target"] for r in read_csv(out_b / "top5.csv")} == {"tulips"}
    a, b = (np.load(o / "sub" / "one.saliency.npy") for o in (out_a, out_b))
    assert not np.allclose(a, b)


@pytest.mark.parametrize("flag, value, says", [
    ("--methods", "saliency,lime", "saliency, gradcam, guided_backprop"),
    ("--target", "cactus", "daisy, roses, tulips"),
    ("--target", "3", "out of range"),
])
def test_a_bad_choice_stops_before_any_work(setup, flag, value, says):
    out = setup["tmp"] / f"bad-{value}"
    rc, err = run(setup["data"], "--out", out, "--weights", setup["ckpt"], flag, value)
    assert rc == 2 and err.startswith("error: ") and says in err
    assert not out.exists()


def test_no_usable_image_or_no_folder_exits_2(setup, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.jpg").write_bytes(b"not a picture at all")
    rc, err = run(bad, "--out", tmp_path / "out", "--weights", setup["ckpt"])
    assert rc == 2 and "x.jpg: x.jpg is not an image" in err and "error: no image" in err
    rc, err = run(tmp_path / "missing", "--out", tmp_path / "out", "--weights", setup["ckpt"])
    assert rc == 2 and err.strip().splitlines() == [f"error: {tmp_path / 'missing'}: no such folder"]


def test_same_stem_files_do_not_overwrite_each_other(setup, tmp_path):
    picture(5).save(tmp_path / "cat.jpg")
    picture(6).save(tmp_path / "cat.png")
    (tmp_path / ".hidden.png").write_bytes(b"junk")                 # hidden files are not tried
    out = tmp_path / "out"                                          # OUT inside DIR is not read back
    for _ in range(2):                                              # the second run must not see the first's output
        rc, err = run(tmp_path, "--out", out, "--weights", setup["ckpt"], "--methods", "gradcam")
        assert rc == 0 and "skipped" not in err
    assert [r["file"] for r in read_csv(out / "top5.csv")] == ["cat.jpg", "cat.png"]
    assert sorted(p.name for p in out.glob("*.png")) == ["cat.jpg.gradcam.png", "cat.png.gradcam.png"]


def test_default_weights_are_the_shipped_trained_model():
    assert get_args_parser().parse_args(["d", "--out", "o"]).weights == str(SHIPPED)
    assert is_trained(W.read_meta(SHIPPED))


def test_help_runs_as_a_module():
    r = subprocess.run([sys.executable, "-m", "viz.explain_folder", "--help"], capture_output=True, text=True,
                       cwd=Path(__file__).resolve().parent.parent, timeout=60)
    assert r.returncode == 0 and "--methods" in r.stdout and "gradcam" in r.stdout
