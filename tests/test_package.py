"""`pip install .` from a fresh copy of the project, into a fresh virtual environment.

The environment sees the already installed dependencies (--system-site-packages) and pip installs
only this project (--no-deps --no-build-isolation --no-index: no network). Everything then runs
from a folder outside the checkout, so nothing can be imported from the source tree by accident:
the console command answers --help, serves the page and classifies a photo with the flowers model
that travelled as package data.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app_server import ROOT, start_server, stop_server

FLOWER_CLASSES = {"daisy", "dandelion", "roses", "sunflowers", "tulips"}
NOT_SOURCE = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", ".pytest_cache", "*.pyi")


def fresh_copy(dst: Path) -> Path:
    """What a clone holds: git's tracked and not-ignored files when this is a git checkout, else the tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True) if (ROOT / ".git").exists() and shutil.which("git") else None
    if listed is None or listed.returncode != 0:
        shutil.copytree(ROOT, dst, ignore=NOT_SOURCE)
        return dst
    for rel in filter(None, listed.stdout.decode().split("\0")):
        src = ROOT / rel
        if src.is_file():                                  # a tracked file deleted in the working tree is skipped
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv bin folder, a working folder outside the checkout) after `pip install` of a fresh copy."""
    tmp = tmp_path_factory.mktemp("package")
    src = fresh_copy(tmp / "src")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        str(src)], cwd=tmp, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    outside = tmp / "elsewhere"
    outside.mkdir()
    return venv / "bin", outside


def test_the_installed_packages_and_assets_come_from_the_environment(installed):
    bin_dir, outside = installed
    code = ("import os, alexnet, app, report, viz\n"
            "from alexnet import weights as W, bvlc, compact\n"
            "from report.config import EXAMPLE\n"
            "print(alexnet.__file__, app.__file__, report.__file__, viz.__file__)\n"
            "print(len(W.imagenet_classes()), tuple(bvlc.conv1()[0].shape), compact.SHIPPED.stat().st_size,"
            " (EXAMPLE / 'paper.json').is_file())\n"
            "from app.examples import flower_examples\n"
            "print(sorted(e.label for e in flower_examples() if os.path.getsize(e.path) > 5000))")
    r = subprocess.run([str(bin_dir / "python"), "-c", code], cwd=outside, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    files, facts, flowers = r.stdout.splitlines()
    venv = str(bin_dir.parent)
    assert all(f.startswith(venv) for f in files.split()), f"imported from outside the environment: {files}"
    n_classes, conv1_shape, model_bytes, example = facts.replace("(", "").replace(")", "") \
        .replace(", ", ",").split()
    assert (n_classes, conv1_shape, example) == ("1000", "96,3,11,11", "True"), facts
    assert int(model_bytes) > 1_000_000, facts          # the real shipped weights, not a Git LFS pointer
    assert flowers == str(sorted(FLOWER_CLASSES)), flowers   # the held-out example photos, one per class


def test_console_command_help_answers_in_under_two_seconds(installed):
    bin_dir, outside = installed
    for name in ("alexnet-train", "alexnet-evaluate", "alexnet-shapes", "alexnet-report", "alexnet-explain-folder"):
        assert (bin_dir / name).is_file(), f"{name} was not installed"
    t0 = time.perf_counter()
    r = subprocess.run([str(bin_dir / "alexnet-explainer"), "--help"], cwd=outside, capture_output=True, text=True,
                       timeout=60)
    took = time.perf_counter() - t0
    assert r.returncode == 0 and r.stdout.startswith("usage: alexnet-explainer"), r.stdout[:300] + r.stderr[-500:]
    assert "GRADIO_SERVER_NAME" in r.stdout
    assert took < 2.0, f"alexnet-explainer --help took {took:.2f} s"


def test_console_command_serves_the_page_and_classifies_a_photo(installed, sample_jpeg):
    gradio_client = pytest.importorskip("gradio_client")
    bin_dir, outside = installed
    url, proc, log = start_server(outside, command=(str(bin_dir / "alexnet-explainer"),), cwd=outside, timeout=180)
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(outside / "downloads"))
        out = client.predict(gradio_client.handle_file(str(sample_jpeg)), api_name="/classify")
        labels = [c["label"] for c in out["confidences"]]
        assert set(labels) == FLOWER_CLASSES, labels             # the shipped flowers model, found as package data
        assert sum(c["confidence"] for c in out["confidences"]) == pytest.approx(1.0, abs=1e-4)
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text()
