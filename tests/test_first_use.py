"""What a new user meets: no ../shared, no network. The data lookup ends in the shipped flowers pack, the
shipped map belongs to the shipped model and the pack, a failed download is one whole sentence, and a
fine-tune runs on the pack."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from alexnet import data as D
from alexnet import pack as P
from alexnet import weights as W
from alexnet.compact import SHIPPED
from alexnet.files import sha256_file
from app_server import NEWCOMER_ENV
from conftest import FLOWERS, make_image_folder
from viz import embedding as E
from viz import fc7_map as M


@pytest.fixture
def newcomer(monkeypatch):
    """This process as a new user's: ../shared ignored, downloads refused at once."""
    for k, v in NEWCOMER_ENV.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("ALEXNET_DATA", raising=False)


@pytest.fixture(scope="module")
def shipped():
    model, meta = W.load(SHIPPED)
    return model.eval(), meta


def test_lookup_order_ends_in_the_pack_and_never_downloads(tmp_path, monkeypatch, newcomer):
    assert D.find_data() == D.Source(P.PACK_FILE, D.FROM_PACK)          # nothing else here: the pack
    monkeypatch.setattr(D, "SHARED_FLOWERS", make_image_folder(tmp_path / "shared"))
    assert D.find_data().origin == D.FROM_PACK                          # ../shared is ignored by the switch
    monkeypatch.setenv(D.IGNORE_SHARED, "0")
    assert D.find_data() == D.Source(tmp_path / "shared", D.FROM_SHARED)
    prepared = make_image_folder(W.cache_dir() / "data" / "flower_photos_256")
    (prepared / D.PREPARED_MARK).write_text("{}")
    try:
        assert D.find_data() == D.Source(prepared, D.FROM_CACHE)      # a downloaded full set beats ../shared
        monkeypatch.setenv("ALEXNET_DATA", str(tmp_path / "shared"))
        assert D.find_data().origin == D.FROM_ENV
        assert D.find_data(str(prepared)).origin == D.FROM_FLAG
    finally:
        (prepared / D.PREPARED_MARK).unlink()
    line = D.Source(P.PACK_FILE, D.FROM_PACK).describe()
    assert line.startswith("flowers pack: 500 of the 3,667 photos") and "218 MB download" in line


def test_a_failed_download_is_one_whole_sentence_naming_data(newcomer):
    with pytest.raises(D.DataError) as e:
        D.find_data(D.FULL)
    msg = str(e.value)
    assert msg.startswith("Could not download the flower photos (no network?") and msg.endswith(".")
    assert "--data DIR" in msg and "pack is in use" in msg
    assert "http" not in msg and msg.count("(") == msg.count(")")      # no cut URL, nothing left open


def test_the_pack_is_credited_held_out_photos_in_one_file():
    pack = P.read_pack()
    side = json.loads(P.PACK_FILE.with_suffix(".json").read_text())
    held_out = set(W.read_meta(SHIPPED)["held_out_files"])
    assert len(pack) == 500 and pack.classes == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert np.bincount(pack.labels).tolist() == [100] * 5
    assert set(pack.files) <= held_out                                   # never trained on
    assert all(" - https://www.flickr.com/" in c for c in pack.credits) and len(pack.credits) == 500
    assert side["rebuild_command"].startswith("python -m alexnet.pack")
    d = D.decode_folder(P.PACK_FILE)
    assert d.images.shape == (500, 3, 256, 256) and d.images.dtype == torch.uint8
    assert d.key == pack.data_key() and d.classes == pack.classes
    assert pack.credit(0).startswith("daisy, by ")
    assets = sum(p.stat().st_size for p in W.ASSETS.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert assets <= 16 * 2**20, f"package data is {assets / 2**20:.1f} MiB"


def test_the_pack_decodes_to_the_full_sets_pixels():
    if not FLOWERS.is_dir():
        pytest.skip("the full flower set is not beside this checkout")
    pack = P.read_pack()
    d = D.decode_folder(P.PACK_FILE)
    for i in (0, 137, 499):
        assert pack.jpeg(i) == (FLOWERS / pack.files[i]).read_bytes()
        one = np.asarray(D.square_resize(D.open_image(FLOWERS / pack.files[i]), 256))
        assert torch.equal(d.images[i], torch.from_numpy(one).permute(2, 0, 1))


def test_the_shipped_map_is_the_shipped_models_map_of_the_pack(shipped):
    model, meta = shipped
    pack = P.read_pack()
    m = M.shipped_map_for(sha256_file(SHIPPED), pack.data_key())
    assert m is not None, "assets/flowers_map.safetensors was not made by the shipped model on the shipped pack"
    assert M.shipped_map_for("0" * 64, pack.data_key()) is None
    assert m.coords.shape == (500, 2) and np.array_equal(m.labels, pack.labels) and m.classes == pack.classes
    d = D.decode_folder(P.PACK_FILE)
    rows = [3, 250, 421]
    feats = E.fc7_features(model, d.images[rows], meta["mean"], meta["std"], meta["input_size"], cache=False)
    np.testing.assert_allclose(m.project(feats), m.points[rows], atol=2e-3)   # same features, same PCA
    spread = np.linalg.norm(m.coords.max(0) - m.coords.min(0))
    for f, r in zip(feats, rows):
        assert M.map_neighbours(m, f, k=1)[0][0] == r                    # a pack photo finds itself first
        assert np.linalg.norm(M.place(m, f) - m.coords[r]) < 0.15 * spread


def test_a_map_on_disk_is_drawn_by_the_next_process_without_fitting(monkeypatch):
    rng = np.random.default_rng(0)
    labels = np.arange(40) % 2
    feats = np.maximum(rng.normal(size=(40, 32)) + labels[:, None] * 2, 0).astype(np.float32)
    first = E.MapCache().get_or_fit(feats, labels, ["a", "b"], key="disk-test")
    monkeypatch.setattr(E, "fit_map", lambda *a, **k: pytest.fail("fitted again"))
    again = E.MapCache().get("disk-test")                                # a new cache: as after a restart
    assert again is not None and again is not first
    np.testing.assert_array_equal(again.coords, first.coords)
    np.testing.assert_allclose(M.place(again, feats[7]), M.place(first, feats[7]), atol=1e-3)


def test_a_fine_tune_on_the_pack_writes_a_checkpoint_that_loads(tmp_path, newcomer):
    from alexnet.train import TrainConfig, train
    r = train(TrainConfig(data=str(D.find_data_dir()), mode="finetune", weights=str(SHIPPED), epochs=1,
                          device="cpu", out=str(tmp_path / "pack-ft")))
    assert not r.cancelled and r.best_checkpoint is not None
    model, meta = W.load(r.best_checkpoint)
    assert meta["classes"] == P.read_pack().classes and meta["split"]["n_val"] == 100
    assert meta["path"] == "features" and 0.5 < meta["metrics"]["val_top1"] <= 1.0
    assert tuple(model(torch.zeros(1, 3, 227, 227)).shape) == (1, 5)
