"""About: the paper's facts beside the numbers this project computes or measures."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from alexnet.shapes import layer_table
from app.ui import Page

ROOT = Path(__file__).resolve().parent.parent


def facts_markdown() -> str:
    paper = layer_table("paper", 227)
    tv = layer_table("torchvision", 224)
    params = sum(r["params"] for r in paper)
    neurons = sum(r["neurons"] for r in paper if not r["layer"].startswith("pool"))
    macs = sum(r["macs"] for r in paper)
    rows = [
        ("Parameters", "60 million", f"{params:,} (two towers, 1000 classes); torchvision: {sum(r['params'] for r in tv):,}",
         "alexnet.shapes, counted from the modules"),
        ("Neurons", "650,000", f"{neurons:,} (conv + fc outputs at 227x227)", "alexnet.shapes"),
        ("Multiply-adds per image", "-", f"{macs:,}", "alexnet.shapes"),
        ("Input size", "224x224", "227x227 makes (W - 11)/4 + 1 = 55 exact; 224 gives 54.25", "alexnet.shapes.conv1_note"),
        ("conv1 output", "55x55x96 (48 per GPU)", "x".join(map(str, paper[0]["out_shape"])), "hooked tensors (tests)"),
        ("Top-1 error, ILSVRC-2012 val", "40.7% (one CNN, 10-crop)",
         "43.45% for torchvision's single-tower re-implementation (its model card)", "torchvision weights.meta"),
    ]
    md = ["| claim | paper | this project | how |", "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    md += ["", report_markdown()]
    for name in ("train_throughput", "explain_latency", "umap_latency"):
        f = ROOT / "benchmarks" / "results" / f"{name}.json"
        if f.exists():
            md += ["", f"**{name}** (from `benchmarks/{name}.py`): `{json.dumps(json.loads(f.read_text()))[:400]}`"]
    return "\n".join(md)


def report_markdown() -> str:
    """The claims table of the paper-fidelity report: this machine's own run if there is one, else the example."""
    for report in (ROOT / "reports" / "paper.md", ROOT / "reports" / "example" / "paper.md"):
        if report.exists():
            text = report.read_text()
            head = text.split("\n## 1.", 1)[0]          # header, machine, settings and the claims table
            head = head.replace("# AlexNet (Krizhevsky", "## Paper-fidelity report: AlexNet (Krizhevsky", 1)
            return head + f"\n\nFull report with plots: `{report.relative_to(ROOT)}` " \
                          "(regenerate with `python -m alexnet.paper`; see the README)."
    return "No paper-fidelity report yet: run `python -m alexnet.paper`."


def build(page: Page) -> None:
    gr.Markdown("Krizhevsky, Sutskever and Hinton, *ImageNet Classification with Deep Convolutional Neural "
                "Networks*, NIPS 2012. Each claim beside this project's own number:")
    gr.Markdown(facts_markdown(), elem_id="about-facts")
