"""The words the app writes about a model: whether to trust it, what it knows, where its weights came from.

One place for them (and, with issue 23's languages, one dictionary per language): the registry and
the tabs pass facts in and get sentences back. (viz.attribution.UNTRAINED_NOTICE is the library's and
the folder CLI's plain-text warning; the page shows this module's.)
"""
from __future__ import annotations

from pathlib import Path

from alexnet.bvlc import BVLC_SOURCE

UNTRAINED_NOTICE = ("**This model is untrained** (random weights): its top-5 and every explanation below are "
                    "noise, shown so you can see what the pipeline does. Load ImageNet weights or train it on the "
                    "flowers in the Retrain tab to get meaningful pictures.")
PARTIAL_NOTICE = ("**This model is only partly trained**: the file gave {loaded} and nothing for {missing}, which "
                  "keep random weights. Its top-5 and every explanation are noise; the loaded layers' filters "
                  "(Filters tab) are real.")


def partial_notice(report: dict) -> str:
    """PARTIAL_NOTICE for a load report (alexnet.weights.load_caffe's `loaded` / `missing` layers)."""
    return PARTIAL_NOTICE.format(loaded=", ".join(report["loaded"]) or "no layer", missing=", ".join(report["missing"]))


def knows_line(classes: list[str]) -> str:
    """What a model can name: a flowers model answers with one of its classes whatever the photo shows."""
    if len(classes) >= 1000:
        return f"Knows the {len(classes):,} ImageNet classes."
    return (f"Knows only {len(classes)} classes: {', '.join(classes)}. Whatever the photo shows, the answer is one "
            f"of these; for 1,000 ImageNet classes choose torchvision ImageNet (a 233 MB download).")


def start_label(meta: dict) -> str:
    """How a checkpoint's weights began, in words (the sidecar's `source`)."""
    src = str(meta.get("source") or "")
    if src.startswith(BVLC_SOURCE):
        on = "flowers" if "flower" in str(meta.get("data") or "") else "this data"
        return f"conv1 from BVLC ImageNet, the rest trained on {on}"
    if src == "scratch":
        return "trained fully from scratch"
    return f"fine-tuned from {Path(src).name}" if src else ""


def banner(label: str, device: str, meta: dict, untrained: bool = False) -> str:
    """The banner above every tab: which model, on which device, what it knows, and whether to trust it."""
    msg = f"**Model:** {label} · device: `{device}`"
    if untrained:
        return msg + "\n\n" + UNTRAINED_NOTICE
    if meta.get("classes"):
        msg += "\n\n" + knows_line(meta["classes"])
    acc = (meta.get("metrics") or {}).get("val_top1")
    if acc is not None:
        msg += f" Held-out accuracy {acc:.1%}."
    report = meta.get("load_report") or {}
    if report.get("partial"):
        msg += "\n\n" + partial_notice(report)
    return msg
