"""About: the paper's facts beside the numbers this project computes or measures."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from alexnet.shapes import layer_table, totals
from app.context import Page
from app.i18n import t
from app.reports import REPORTS, read_report
from report.config import EXAMPLE
from report.render import TITLE, claims_markdown, summary

BENCHMARKS = Path("benchmarks") / "results"   # present when the app runs from a clone


def facts_markdown() -> str:
    paper = layer_table("paper", 227)
    t, tv = totals(paper), totals(layer_table("torchvision", 224))
    rows = [
        ("Parameters", "60 million", f"{t['params']:,} (two towers, 1000 classes); torchvision: {tv['params']:,}",
         "alexnet.shapes, counted from the modules"),
        ("Neurons", "650,000", f"{t['neurons']:,} (conv + fc outputs at 227x227)", "alexnet.shapes"),
        ("Multiply-adds per image", "-", f"{t['macs']:,}", "alexnet.shapes"),
        ("Input size", "224x224", "227x227 makes (W - 11)/4 + 1 = 55 exact; 224 gives 54.25", "alexnet.shapes.conv1_note"),
        ("conv1 output", "55x55x96 (48 per GPU)", "x".join(map(str, paper[0]["out_shape"])), "hooked tensors (tests)"),
        ("Top-1 error, ILSVRC-2012 val", "40.7% (one CNN, 10-crop)",
         "43.45% for torchvision's single-tower re-implementation (its model card)", "torchvision weights.meta"),
    ]
    md = ["| claim | paper | this project | how |", "|---|---|---|---|"]
    md += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    md += ["", report_markdown()]
    for name in ("train_throughput", "explain_latency", "umap_latency"):
        f = BENCHMARKS / f"{name}.json"
        if f.exists():
            md += ["", f"**{name}** (from `benchmarks/{name}.py`): `{json.dumps(json.loads(f.read_text()))[:400]}`"]
    return "\n".join(md)


def report_markdown(paths=REPORTS) -> str:
    """The paper-fidelity report's claims table, read from the first readable paper.json of `paths`."""
    for path in map(Path, paths):
        found = read_report([path])
        if found is None:
            continue
        try:
            head = [f"## Paper-fidelity report: {TITLE}", ""] + summary(found[1])
            table = claims_markdown(found[1])
        except (KeyError, TypeError, ValueError):
            continue
        md_file = path.with_name("paper.md")
        if md_file.is_relative_to(EXAMPLE.parents[1]):     # the shipped example: named inside the package,
            md_file = md_file.relative_to(EXAMPLE.parents[1])   # never by where the server's code lives
        return "\n".join(head + ["", table, "", f"Full report with plots: `{md_file}` (regenerate with "
                                 "`alexnet-report`; see the README)."])
    return "No paper-fidelity report yet: run `alexnet-report`."


def build(page: Page) -> None:
    gr.Markdown(t("about_intro"))
    gr.Markdown(facts_markdown(), elem_id="about-facts")
