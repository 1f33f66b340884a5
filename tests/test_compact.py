"""alexnet.compact and the flowers model shipped in assets/: SVD factors in, the dense paper network out."""
from __future__ import annotations

import json

import pytest
import torch

from alexnet import data as D
from alexnet import evaluate as E
from alexnet import weights as W
from alexnet.compact import (BUDGET_BYTES, SHIPPED, Factored, compact_bytes, expand_tensors, is_compact, load_compact,
                             save_compact, truncate, svd)
from alexnet.model import build, count_parameters


@pytest.fixture(scope="module")
def small():
    """A quarter-width paper model (fc 1024): the same code path, seconds instead of minutes."""
    return build("paper", 5, width=0.25, generator=torch.Generator().manual_seed(0))


def test_truncated_svd_is_exact_at_full_rank_and_improves_with_rank():
    w = torch.randn(64, 96, generator=torch.Generator().manual_seed(0))
    u, s, vh = svd(w)
    errors = []
    for r in (4, 16, 32, 64):
        a, b = truncate(u, s, vh, r)
        assert a.shape == (64, r) and b.shape == (r, 96)
        errors.append(float((a @ b - w).norm()))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-3
    # Eckart-Young: the error at rank r is the norm of the dropped singular values
    assert errors[0] == pytest.approx(float(s[4:].norm()), rel=1e-4)


def test_compact_file_round_trip_is_what_at_rank_gives(small, tmp_path):
    f = Factored(small)
    meta = W.make_meta(small, ["a", "b", "c", "d", "e"], source="scratch")
    path = save_compact(tmp_path / "tiny", f, meta, rank=16)
    assert path.with_suffix(".json").is_file()
    loaded, m = W.load_checkpoint(path)                       # the one door the app uses
    assert is_compact(m) and m["svd"]["rank"] == 16 and m["classes"] == ["a", "b", "c", "d", "e"]
    expected = f.at_rank(16).state_dict()
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, expected[k]), k
    # dense nn.Linear layers again, at the size the architecture says
    assert loaded.param_layer("fc6").weight.shape == small.param_layer("fc6").weight.shape
    assert count_parameters(loaded) == count_parameters(small)
    # the file holds factors, not the dense matrices
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as fh:
        keys = set(fh.keys())
    fc6 = small.param_key("fc6") + ".weight"
    assert {fc6 + ".u", fc6 + ".v"} <= keys and fc6 not in keys
    assert path.stat().st_size == pytest.approx(compact_bytes(small, 16), rel=0.02)


def test_expand_keeps_every_other_tensor(small):
    tensors = Factored(small).tensors(8)
    state = expand_tensors(tensors)
    assert set(state) == set(small.state_dict())
    conv1 = small.param_key("conv1") + ".weight"
    assert torch.allclose(state[conv1], small.state_dict()[conv1], atol=1e-3)      # fp16 storage


# ---------------------------------------------------------------- the shipped file

@pytest.fixture(scope="module")
def shipped():
    assert SHIPPED.is_file(), f"the shipped flowers model is missing: {SHIPPED}"
    return load_compact(SHIPPED)


def test_shipped_model_is_the_paper_network_for_five_flowers(shipped):
    model, meta = shipped
    assert count_parameters(model) == 56_888_709
    spec = model.spec.to_dict()
    assert (spec["arch"], spec["lrn"], spec["groups"], spec["num_classes"]) == ("paper", True, 2, 5)
    assert meta["classes"] == ["daisy", "dandelion", "roses", "sunflowers", "tulips"]
    assert meta["input_size"] == 227
    size = SHIPPED.stat().st_size + SHIPPED.with_suffix(".json").stat().st_size
    assert size <= BUDGET_BYTES, size


def test_shipped_sidecar_records_how_to_rebuild_and_credit(shipped):
    _, meta = shipped
    side = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert side["svd"] == meta["svd"]
    for key in ("classes", "mean", "std", "input_size", "training_command", "seed", "split", "held_out_files",
                "metrics", "svd", "data_credit", "source"):
        assert side.get(key) is not None, key
    assert side["training_command"].startswith("python -m alexnet.train --mode scratch")
    assert "CC-BY" in side["data_credit"]
    m = side["metrics"]
    assert m["val_top1"] >= 0.75 and m["val_top1_ten_crop"] >= 0.75
    assert set(m["per_class"]) == set(side["classes"])
    assert len(side["held_out_files"]) == m["n_val"] == side["split"]["n_val"]
    ranks = [c["rank"] for c in side["svd"]["curve"]]
    assert side["svd"]["rank"] in ranks and ranks == sorted(ranks)
    chosen = next(c for c in side["svd"]["curve"] if c["rank"] == side["svd"]["rank"])
    assert chosen["val_top1"] >= side["svd"]["dense_val_top1"] - side["svd"]["tolerance"] - 1e-9
    assert all(c["val_top1"] < side["svd"]["dense_val_top1"] - side["svd"]["tolerance"]
               for c in side["svd"]["curve"] if c["rank"] < side["svd"]["rank"])


def test_shipped_model_accuracy_on_its_held_out_flowers(shipped, flowers_dir):
    model, meta = shipped
    decoded = D.decode_folder(flowers_dir)
    by_path = {str(p): i for i, p in enumerate(decoded.paths)}
    idx = torch.tensor([by_path[str(flowers_dir / f)] for f in meta["held_out_files"]])
    ev = E.evaluate(model, meta, decoded.images[idx], decoded.labels[idx])
    assert ev["top1"] >= 0.75
    assert abs(ev["top1"] - meta["metrics"]["val_top1"]) <= 0.01
