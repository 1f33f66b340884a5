"""A wheel of a fresh copy of the project, installed into a fresh virtual environment, used as a new user would.

The wheel is built by the environment running the tests (a venv or not; `pip wheel --no-deps
--no-build-isolation --no-index`: no network). The new environment sees that environment's packages
(a .pth file naming its site-packages; --system-site-packages would see the *base* interpreter's instead)
and installs only the wheel. Everything then runs from an empty folder outside the checkout, with an
empty HOME, no ../shared and no reachable download (app_server.NEWCOMER_ENV): the console command
answers --help, serves the page and classifies a photo with the flowers model that travelled as package
data, and the shipped map, its neighbours and a fine-tune on the shipped flowers pack all work.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import site
import subprocess
import zipfile
import sys
import time
from pathlib import Path

import pytest

from app_server import NEWCOMER_ENV, ROOT, start_server, stop_server

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
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                        "-w", str(tmp / "dist"), str(src)], cwd=tmp, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    wheel, = (tmp / "dist").glob("alexnet_explainer-*.whl")
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / "bin" / "python"
    site_dir = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    Path(site_dir, "tests-see-the-running-environment.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], cwd=tmp,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    outside = tmp / "elsewhere"
    outside.mkdir()
    return venv / "bin", outside, wheel


def newcomer_env(outside: Path) -> dict:
    """An empty HOME and cache, no ../shared, no reachable download, nothing set by this test run."""
    home = outside / "home"
    home.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALEXNET_")}
    return dict(env, HOME=str(home), ALEXNET_CACHE=str(home / ".cache" / "alexnet-explainer"), **NEWCOMER_ENV)


def test_the_installed_packages_and_assets_come_from_the_environment(installed):
    bin_dir, outside, _ = installed
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
    bin_dir, outside, _ = installed
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
    bin_dir, outside, _ = installed
    url, proc, log = start_server(outside, command=(str(bin_dir / "alexnet-explainer"),), cwd=outside, timeout=180,
                                  newcomer=True, env=newcomer_env(outside))
    try:
        client = gradio_client.Client(url, verbose=False, download_files=str(outside / "downloads"))
        out = client.predict(gradio_client.handle_file(str(sample_jpeg)), api_name="/classify")
        labels = [c["label"] for c in out["confidences"]]
        assert set(labels) == FLOWER_CLASSES, labels             # the shipped flowers model, found as package data
        assert sum(c["confidence"] for c in out["confidences"]) == pytest.approx(1.0, abs=1e-4)
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text()


def test_the_wheels_package_data_fits_the_budget(installed):
    *_, wheel = installed
    with zipfile.ZipFile(wheel) as z:
        data = {i.filename: i.file_size for i in z.infolist() if i.filename.startswith("alexnet/assets/")}
    assert {"alexnet/assets/flowers_pack.safetensors", "alexnet/assets/flowers_map.safetensors",
            "alexnet/assets/flowers_alexnet.safetensors", "alexnet/assets/flowers_conv5_icons.safetensors",
            "alexnet/assets/flowers_conv5_icons.json"} <= set(data), sorted(data)
    assert sum(data.values()) <= 16 * 2**20, f"{sum(data.values()) / 2**20:.1f} MiB of package data"


NEWCOMER_SCRIPT = """
import time, numpy as np
from alexnet import data as D, weights as W
from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from alexnet.pack import read_pack
from viz import fc7_map as M
from viz.embedding import fc7_features
src = D.find_data()
print(src.origin, src.path.name)
t0 = time.perf_counter()
m = M.shipped_map_for(sha256_file(SHIPPED), read_pack(src.path).data_key())
print(len(m.coords), round(time.perf_counter() - t0, 2))
model, meta = W.load(SHIPPED)
d = D.decode_folder(src.path)
f = fc7_features(model.eval(), d.images[[42]], meta["mean"], meta["std"], meta["input_size"], cache=False)
print(M.map_neighbours(m, f[0], k=1)[0][0])
try:
    D.find_data(D.FULL)
except D.DataError as e:
    print(str(e).split(" (")[0])
from alexnet.train import TrainConfig, train
r = train(TrainConfig(mode="finetune", weights=str(SHIPPED), epochs=1, device="cpu"))
print(r.best_checkpoint.parent == W.cache_dir() / "checkpoints", r.meta["split"]["n_val"])
"""


def test_without_shared_or_network_the_map_neighbours_and_a_fine_tune_work(installed):
    bin_dir, outside, _ = installed
    r = subprocess.run([str(bin_dir / "python"), "-c", NEWCOMER_SCRIPT], cwd=outside, env=newcomer_env(outside),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    source, shipped_map, neighbour, failed, trained = r.stdout.splitlines()[-5:]
    assert source == "pack flowers_pack.safetensors", source
    points, seconds = shipped_map.split()
    assert points == "500" and float(seconds) < 2.0, shipped_map
    assert neighbour == "42"                       # a pack photo's nearest neighbour on the shipped map is itself
    assert failed == "Could not download the flower photos"
    assert trained == "True 100", trained


BEYOND_SCRIPT = """
import time
from PIL import Image
from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from app.examples import flower_examples
from viz import adversarial, concept_icons
from viz.attribution import explain
model, meta = W.load(SHIPPED)
model.eval()
rose = next(e.path for e in flower_examples() if e.label == "roses")
e = explain(model, Image.open(rose).convert("RGB"), None, "lrp", meta=meta)
print(meta["classes"][e.target], round(float(e.heatmap.sum()), 3) > 0)
t0 = time.perf_counter()
icons = concept_icons.icons_for(model, sha256_file(SHIPPED), make=False)
print(tuple(icons.shape), time.perf_counter() - t0 < 2)
a = adversarial.attack(model, adversarial.pixels(rose, 227), meta["mean"], meta["std"], 8, "pgd",
                       target=meta["classes"].index("tulips"), input_size=227)
print(meta["classes"][a.top1_after])
"""


def test_installed_lrp_icons_and_attack_work_offline(installed):
    """Issue 24's views from the wheel, outside the checkout, no ../shared, no network: LRP through the installed
    zennit, the shipped conv5 icons read (not made), PGD reaching tulips on the held-out rose."""
    bin_dir, outside, _ = installed
    r = subprocess.run([str(bin_dir / "python"), "-c", BEYOND_SCRIPT], cwd=outside, env=newcomer_env(outside),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert r.stdout.splitlines()[-3:] == ["roses True", "(256, 3, 64, 64) True", "tulips"], r.stdout[-1000:]


def test_in_chromium_the_installed_app_opens_embeddings_drawn_and_fine_tunes(installed, tmp_path):
    """The issue's 'must show': wheel, empty folder, empty HOME, no ../shared, no network."""
    from conftest import chromium_path
    if chromium_path() is None or importlib.util.find_spec("playwright") is None:
        pytest.skip("needs Chromium and Python playwright")
    from test_browser_newcomer import browse, embeddings_open_drawn, retrain_default_start
    bin_dir, outside, _ = installed
    work = outside / "chromium-run"
    work.mkdir()
    url, proc, log = start_server(work, command=(str(bin_dir / "alexnet-explainer"),), cwd=work, timeout=180,
                                  newcomer=True, env=newcomer_env(work))
    try:
        with browse(url) as page:
            embeddings_open_drawn(page)
            retrain_default_start(page)
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
