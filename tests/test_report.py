"""report: the exact arithmetic, the BVLC colour split, every section end to end at a tiny size, and the
About tab's claims table read from a paper.json."""
import ast
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from alexnet.shapes import layer_table
from conftest import ROOT, make_image_folder
from report import arithmetic, conv1, config, neighbours, small_net, stats
from report.__main__ import main
from report.make import make_report
from report.render import claims_markdown


# ---------------------------------------------------------------- 1. exact arithmetic

def test_parameters_neurons_and_macs_are_exact():
    a = arithmetic.tables()
    assert a["paper"]["params"] == arithmetic.BVLC_PARAMS == 60_965_224          # two towers, 1000 classes, biases
    assert a["torchvision"]["params"] == arithmetic.TORCHVISION_PARAMS == 61_100_840
    # Neurons: conv and fc outputs (pools hold no new units); the paper's "650,000".
    per_layer = {r["layer"]: r["neurons"] for r in layer_table("paper", 227)}
    assert per_layer == {"conv1": 290_400, "pool1": 69_984, "conv2": 186_624, "pool2": 43_264, "conv3": 64_896,
                         "conv4": 64_896, "conv5": 43_264, "pool5": 9_216, "fc6": 4096, "fc7": 4096, "fc8": 1000}
    paper_neurons = arithmetic.PAPER_NEURONS
    assert a["paper"]["neurons"] == 659_272 and abs(a["paper"]["neurons"] - paper_neurons) / paper_neurons < 0.02
    # MACs per layer: out_h * out_w * out_c * (in_c / groups) * k * k for convs, in * out for fc.
    macs = {r["layer"]: r["macs"] for r in a["paper"]["rows"]}
    assert macs["conv1"] == 55 * 55 * 96 * 3 * 11 * 11
    assert macs["conv2"] == 27 * 27 * 256 * (96 // 2) * 5 * 5                # grouped: each half reads 48 channels
    assert macs["fc6"] == 256 * 6 * 6 * 4096 and a["paper"]["macs"] == 724_406_816
    claims = arithmetic.claims(dict(arithmetic.measure(None, None), seconds=0.0), None)
    assert "60,965,224" in claims["params"][0] and "61,100,840" in claims["params"][0]
    assert "659,272" in claims["neurons"][0] and "54.25" in claims["input"][0]


# ---------------------------------------------------------------- 2. conv1 on BVLC

def test_bvlc_groups_differ_in_colour_the_expected_way():
    c = conv1.measure(config.quick(seeds=0), None)["bvlc"]
    # In the BVLC file the first 48 filters are the colour-specific tower, the last 48 the grey edge detectors.
    assert c["medians"][0] > 0.8 and c["medians"][1] < 0.2
    assert c["auc"] > 0.85 and c["split"] == pytest.approx(c["auc"])
    assert len(c["scores"]) == 96


# ---------------------------------------------------------------- helpers

def test_verdict_and_epochs_to_error():
    assert stats.verdict([0.05, 0.06, 0.04]) == "agrees"
    assert stats.verdict([-0.05, -0.06, -0.04]) == "disagrees at this scale"
    assert stats.verdict([0.05, -0.06, 0.01]) == "inconclusive at this scale"
    assert stats.verdict([0.05]).startswith("inconclusive")
    h = [dict(epoch=1, train_acc=0.3), dict(epoch=2, train_acc=0.5), dict(epoch=3, train_acc=0.7)]
    assert stats.epochs_to_error(h, 0.5, 0.8) == pytest.approx(2.0)
    assert stats.epochs_to_error(h, 0.4, 0.8) == pytest.approx(2.5)    # halfway between 0.5 (ep 2) and 0.3 (ep 3)
    assert stats.epochs_to_error(h, 0.1, 0.8) is None
    assert small_net.small_net("tanh", 5)(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    bank = np.array([[0.0, 0.0], [1.0, 0.0], [5.0, 5.0]])
    assert neighbours.nearest(bank, np.array([[0.9, 0.1]]), 2).tolist() == [[1, 0]]


def test_small_net_init_comes_from_its_generator():
    a, b = (small_net.small_net("relu", 3, torch.Generator().manual_seed(4)) for _ in range(2))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_report_never_seeds_the_global_rng_outside_main():
    for path in (ROOT / "report").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.manual_seed":
                pytest.fail(f"{path.name}:{node.lineno} seeds torch's global RNG")


# ---------------------------------------------------------------- every section end to end, tiny

@pytest.fixture(scope="module")
def report(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:   # the autouse cache isolation is function-scoped
        mp.setenv("ALEXNET_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        data = make_image_folder(tmp_path_factory.mktemp("paper") / "images", per_class=10, size=80)
        out = tmp_path_factory.mktemp("paper-out")
        argv = ["--quick", "--data", str(data), "--out", str(out), "--device", "cpu"]
        assert main(argv) == 0
    return out


def test_quick_report_writes_every_claim_and_plot(report):
    md = (report / "paper.md").read_text()
    for claim, paper in config.CLAIMS.values():
        row = next((line for line in md.splitlines() if line.startswith(f"| {claim} | {paper} |")), None)
        assert row is not None, claim
        assert row.count("|") >= 6 and row.rstrip().endswith(" s |")     # claim | paper | project | how | time
    assert "Machine:" in md and "torch" in md and "device cpu" in md and "python -m report --quick" in md
    for section in ("## 1. Exact arithmetic", "## 2. conv1", "## 3. Ablations", "## 4. fc7 nearest"):
        assert section in md
    assert "60,965,224" in md and "61,100,840" in md
    for png in ("ablations.png", "conv1_groups.png", "neighbours.png"):
        assert (report / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({png})" in md
    assert not list(report.glob(".*.tmp"))                                # atomic writes leave no temp files


def test_quick_report_runs_every_ablation(report):
    j = json.loads((report / "paper.json").read_text())
    assert set(j["claims"]) == set(config.CLAIMS)
    ab = j["sections"]["ablations"]
    assert set(ab["variants"]) == set(config.VARIANTS)
    for name, v in ab["variants"].items():
        assert len(v["val"]) == 2 and all(0 <= x <= 1 for x in v["val"]), name     # 2 seeds each
    assert len(ab["ten_crop"]["ten"]) == 2 and set(ab["small"]["runs"]) == {"relu", "tanh"}
    assert j["config"]["width"] == 0.125 and j["config"]["seeds"] == 2 and j["machine"]["cpu_count"] >= 1
    # The tiny run cannot support anything: it must say so rather than claim agreement.
    assert "inconclusive at this scale" in j["claims"]["lrn"]["project"]
    assert all(s["seconds"] >= 0 for s in j["sections"].values())


def test_neighbour_shares_are_fractions(report):
    n = json.loads((report / "paper.json").read_text())["sections"]["neighbours"]
    assert 0 <= n["fc7"] <= 1 and 0 <= n["pixels"] <= 1 and 0 < n["chance"] <= 1
    assert len(n["queries"]) == 6 and all(len(r) == n["k"] == 6 for r in n["fc7_neighbours"])   # 2 val images x 3 classes
    assert all(0 <= r["fc7"] <= 1 and 0 <= r["pixels"] <= 1 for r in n["per_class"].values())
    assert not set(n["queries"]) & {i for r in n["fc7_neighbours"] for i in r}   # neighbours come from train only


def test_only_and_bad_sections(tmp_path):
    out = tmp_path / "arith"
    assert main(["--only", "arithmetic", "--out", str(out)]) == 0
    md = (out / "paper.md").read_text()
    assert "| Parameters |" in md and "## 3." not in md and not list(out.glob("*.png"))
    assert main(["--only", "arithmetic,bogus", "--out", str(out)]) == 2
    with pytest.raises(ValueError, match="unknown section"):
        make_report(config.quick(only=("conv1", "bogus"), out=str(tmp_path / "c")))


def test_render_redoes_text_and_plots_from_paper_json(report, tmp_path):
    # Nothing is trained; the neighbour thumbnails come from the data folder's decode cache.
    assert main(["--render", str(report / "paper.json"), "--out", str(tmp_path)]) == 0
    again = (tmp_path / "paper.md").read_text()
    assert "re-rendered from its paper.json" in again and "nothing re-measured" in again
    original = (report / "paper.md").read_text()
    assert again.split("## Claims")[1] == original.split("## Claims")[1]      # same claims, same numbers
    assert {p.name for p in tmp_path.glob("*.png")} == {"ablations.png", "conv1_groups.png", "neighbours.png"}
    assert main(["--render", str(tmp_path / "missing.json")]) == 2


def test_claims_markdown_is_paper_md_s_table(report):
    payload = json.loads((report / "paper.json").read_text())
    table = claims_markdown(payload)
    md = (report / "paper.md").read_text()
    assert table in md and table.count("\n") == len(config.CLAIMS) + 1       # header, rule, one row per claim


# ---------------------------------------------------------------- the About tab reads paper.json

def test_about_tab_claims_come_from_paper_json(tmp_path):
    from app import tab_about
    assert main(["--only", "arithmetic", "--out", str(tmp_path)]) == 0
    payload = json.loads((tmp_path / "paper.json").read_text())
    payload["claims"]["params"]["project"] = "exactly 42 parameters, from this paper.json"
    (tmp_path / "paper.json").write_text(json.dumps(payload))
    (tmp_path / "paper.md").write_text("# a paper.md the tab must not read\n\n## 1. nothing\n")
    md = tab_about.report_markdown([tmp_path / "missing" / "paper.json", tmp_path / "paper.json"])
    assert "Paper-fidelity report" in md
    assert "| Parameters | 60 million | exactly 42 parameters, from this paper.json |" in md
    assert "python -m report" in md and "must not read" not in md
    assert "No paper-fidelity report" in tab_about.report_markdown([Path(tmp_path / "none.json")])
