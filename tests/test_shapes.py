import subprocess
import sys

import pytest
import torch

from alexnet.model import LAYERS, build
from alexnet.shapes import conv1_note, layer_table


@pytest.mark.parametrize("arch,size", [("paper", 227), ("torchvision", 224)])
def test_classroom_sides(arch, size):
    rows = layer_table(arch, size)
    sides = [r["out_shape"][1] for r in rows if len(r["out_shape"]) == 3]
    assert sides == [55, 27, 27, 13, 13, 13, 13, 6]


@pytest.mark.parametrize("arch,size,opts", [("paper", 227, {}), ("torchvision", 224, {}),
                                            ("paper", 128, {"pool": (2, 2), "width": 0.25})])
def test_rows_agree_with_hooked_tensors(arch, size, opts):
    rows = layer_table(arch, size, num_classes=7, **opts)
    model = build(arch, 7, **opts).eval()
    with torch.no_grad():
        _, acts = model(torch.zeros(1, 3, size, size), return_activations=True)
    assert [r["layer"] for r in rows] == list(LAYERS)
    for r in rows:
        assert tuple(acts[r["layer"]].shape[1:]) == r["out_shape"], r["layer"]
    assert sum(r["params"] for r in rows) == sum(p.numel() for p in model.parameters())


def test_formula_receptive_field_and_macs_of_conv1():
    conv1 = layer_table("paper", 227)[0]
    assert conv1["formula"] == "floor((227 - 11 + 2*0) / 4) + 1 = 55"
    assert conv1["macs"] == 55 * 55 * 96 * 3 * 11 * 11
    assert conv1["receptive_field"] == 11 and conv1["jump"] == 4
    pool5 = layer_table("paper", 227)[7]
    assert pool5["receptive_field"] == 195 and pool5["jump"] == 32


def test_paper_224_inconsistency_is_explained():
    rows = layer_table("paper", 224)
    assert rows[0]["exact"] is False and rows[0]["out_shape"][1] == 54
    assert "54.25" in conv1_note("paper", 224)
    assert layer_table("paper", 227)[0]["exact"] is True


def test_neuron_count_is_about_650k():
    rows = layer_table("paper", 227)
    neurons = sum(r["neurons"] for r in rows if not r["layer"].startswith("pool"))
    assert 640_000 < neurons < 670_000


def test_cli_prints_markdown_with_total():
    out = subprocess.run([sys.executable, "-m", "alexnet.shapes", "--arch", "paper", "--size", "227"],
                         capture_output=True, text=True, check=True).stdout
    assert "| conv1 |" in out and "96x55x55" in out
    assert out.strip().splitlines()[-1] == "Total parameters: 60,965,224"
    bad = subprocess.run([sys.executable, "-m", "alexnet.shapes", "--size", "40"], capture_output=True, text=True)
    assert bad.returncode == 2 and "too small" in bad.stderr
