"""Shared fixtures: the optional real data in ../shared, and small synthetic image folders."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from alexnet.bvlc import CONV1_FILE

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("ALEXNET_SHARED", ROOT.parent / "shared"))
FLOWERS = SHARED / "data" / "flower_photos_256"
BVLC_CONV1 = CONV1_FILE


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache_for_the_session(tmp_path_factory):
    """Set before any module-scoped fixture runs (a fitted UMAP map compiles numba code into the cache)."""
    os.environ["ALEXNET_CACHE"] = str(tmp_path_factory.getbasetemp() / "cache")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's real cache."""
    monkeypatch.setenv("ALEXNET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture
def flowers_dir() -> Path:
    if not FLOWERS.is_dir():
        pytest.skip(f"real flower photos not found at {FLOWERS}")
    return FLOWERS


def make_image_folder(root: Path, classes=("a", "b", "c"), per_class=6, size=64, seed=0) -> Path:
    """An ImageFolder tree whose classes differ in colour, so a tiny model can learn them."""
    from PIL import Image
    rng = np.random.default_rng(seed)
    palette = np.array([[220, 40, 40], [40, 200, 60], [50, 60, 230], [230, 220, 40], [200, 60, 220]])
    for ci, c in enumerate(classes):
        d = root / c
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 60, (size, size, 3)) + palette[ci % len(palette)] * 0.75
            Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(d / f"{c}_{i}.jpg", quality=90)
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One real server for the session: a fresh cache (so the shipped flowers model is the default),
    no reachable ImageNet download, a small synthetic flower-like folder."""
    from app_server import start_server, stop_server
    work = tmp_path_factory.mktemp("server")
    data = make_image_folder(work / "data", classes=("daisy", "roses", "tulips"), per_class=8, size=96)
    url, proc, log = start_server(work, data)
    yield dict(url=url, proc=proc, log=log, data=data, work=work)
    stop_server(proc)


def held_out(cls: str) -> str:
    """The package's held-out example photo of class `cls` (never trained on; credited in examples.json)."""
    import json

    from alexnet.files import ASSETS
    photos = json.loads((ASSETS / "examples" / "examples.json").read_text())["photos"]
    return str(ASSETS / "examples" / next(p["file"] for p in photos if p["class"] == cls))


@pytest.fixture(scope="module")
def built_page():
    """The whole page built without a server, as a new user's (the shipped flowers model and the flowers pack of
    500 photos, not the 3,667 of ../shared, whose passes would take a minute each): its handlers are plain
    functions."""
    from alexnet.data import IGNORE_SHARED
    from app.page import build_app
    before = os.environ.get(IGNORE_SHARED)
    os.environ[IGNORE_SHARED] = "1"             # read at every lookup of the data in use, so kept for the module
    demo = build_app()
    try:
        yield demo.page
    finally:
        demo.compute.shutdown()
        if before is None:
            os.environ.pop(IGNORE_SHARED, None)
        else:
            os.environ[IGNORE_SHARED] = before


@pytest.fixture
def sample_jpeg(tmp_path) -> Path:
    """A real photo if the flowers are here, else a synthetic one."""
    if FLOWERS.is_dir():
        return sorted((FLOWERS / "daisy").glob("*.jpg"))[0]
    from PIL import Image
    p = tmp_path / "sample.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)).save(p)
    return p


def chromium_path() -> str | None:
    import shutil
    return shutil.which("chromium") or shutil.which("chromium-browser")
