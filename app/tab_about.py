"""About: the paper's facts beside the numbers this project computes or measures."""
from __future__ import annotations

import json
from pathlib import Path

import gradio as gr

from alexnet.shapes import layer_table, totals
from app.context import Page
from app.i18n import current_lang, t, tr
from app.reports import REPORTS, read_report
from report.config import EXAMPLE
from report.render import TITLE, claims_markdown, summary

BENCHMARKS = Path("benchmarks") / "results"   # present when the app runs from a clone


def facts_markdown(lang: str | None = None) -> str:
    """The paper's numbers beside this project's, in the visitor's language (the report's table is English)."""
    paper = layer_table("paper", 227)
    t, tv = totals(paper), totals(layer_table("torchvision", 224))
    rows = [
        (tr(lang, "about_params"), tr(lang, "about_params_paper"),
         tr(lang, "about_params_ours", params=f"{t['params']:,}", tv=f"{tv['params']:,}"), tr(lang, "about_params_how")),
        (tr(lang, "about_neurons"), "650,000", tr(lang, "about_neurons_ours", n=f"{t['neurons']:,}"), "alexnet.shapes"),
        (tr(lang, "about_macs"), "-", f"{t['macs']:,}", "alexnet.shapes"),
        (tr(lang, "about_input"), "224x224", tr(lang, "about_input_ours"), "alexnet.shapes.conv1_note"),
        (tr(lang, "about_conv1"), tr(lang, "about_conv1_paper"), "x".join(map(str, paper[0]["out_shape"])),
         tr(lang, "about_conv1_how")),
        (tr(lang, "about_top1"), tr(lang, "about_top1_paper"), tr(lang, "about_top1_ours"), "torchvision weights.meta"),
    ]
    md = [tr(lang, "about_table_head"), "|---|---|---|---|"]
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
    facts = gr.Markdown(facts_markdown(), elem_id="about-facts")
    page.demo.load(lambda: facts_markdown(current_lang()), None, facts, api_name=False, show_progress="hidden")
