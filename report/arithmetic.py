"""Section 1, exact arithmetic: parameters, neurons, multiply-adds and conv1's output side, counted by `alexnet.shapes`.

Nothing is trained or measured: the numbers follow from the architecture alone, so `claims` and
`markdown` recount them and `measure` keeps only the totals for paper.json.
"""
from __future__ import annotations

from alexnet.shapes import conv1_note, layer_table, totals
from report.stats import secs

PNG = None
BVLC_PARAMS = 60_965_224          # the two-tower 1000-class paper model, biases included
TORCHVISION_PARAMS = 61_100_840   # torchvision.models.alexnet
PAPER_NEURONS = 650_000           # "The neural network ... has 60 million parameters and 650,000 neurons"
HOW = "alexnet.shapes.layer_table (counted from the modules)"


def tables() -> dict:
    """Per-layer rows and totals for the paper net at 227 and torchvision's at 224 (1000 classes)."""
    out = {}
    for arch, size in (("paper", 227), ("torchvision", 224)):
        rows = layer_table(arch, size)
        out[arch] = dict(size=size, rows=rows, **totals(rows))
    out["note"] = conv1_note("paper", 227)
    return out


def measure(cfg, lab) -> dict:
    a = tables()
    return {arch: {k: a[arch][k] for k in ("params", "neurons", "macs")} for arch in ("paper", "torchvision")}


def claims(result: dict, cfg) -> dict:
    a, seconds = tables(), result["seconds"]
    p, tv = a["paper"], a["torchvision"]
    conv1 = p["rows"][0]
    return {
        "params": (f"{p['params']:,} (two towers, 1000 classes, with biases); torchvision's one tower: "
                   f"{tv['params']:,}", HOW, seconds),
        "neurons": (f"{p['neurons']:,} (conv1-5 + fc6-8 outputs at 227; pools not counted); torchvision: "
                    f"{tv['neurons']:,}", HOW, seconds),
        "macs": (f"{p['macs'] / 1e6:,.0f} M (paper net at 227); torchvision at 224: {tv['macs'] / 1e6:,.0f} M",
                 HOW, seconds),
        "input": (f"227x227 in, {'x'.join(map(str, conv1['out_shape']))} out: (227 - 11)/4 + 1 = 55 exactly; "
                  f"224 gives 54.25", "alexnet.shapes.conv1_note", seconds),
    }


def markdown(result: dict, cfg) -> list[str]:
    a = tables()
    p = a["paper"]
    md = [f"## 1. Exact arithmetic ({secs(result['seconds'])})", "",
          f"Paper net at {p['size']}x{p['size']}, 1000 classes (from `alexnet.shapes`; "
          "`python -m alexnet.shapes` prints every formula):", "",
          "| layer | out | weights | biases | parameters | neurons | MACs |", "|---|---|---:|---:|---:|---:|---:|"]
    for r in p["rows"]:
        md.append(f"| {r['layer']} | {'x'.join(map(str, r['out_shape']))} | {r['weights']:,} | {r['biases']:,} | "
                  f"{r['params']:,} | {r['neurons']:,} | {r['macs']:,} |")
    md.append(f"| **total** | | | | **{p['params']:,}** | {p['neurons']:,} (without pools) | {p['macs']:,} |")
    tv = a["torchvision"]
    md += ["", f"torchvision's AlexNet at {tv['size']}: {tv['params']:,} parameters, {tv['neurons']:,} neurons, "
           f"{tv['macs']:,} MACs.", "", a["note"].replace("\n", " ")]
    return md


def figure(result: dict, cfg, images):
    return None
