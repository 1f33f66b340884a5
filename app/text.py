"""The words the app writes about a model: whether to trust it, what it knows, where its weights came from.

One place for them: the registry and the tabs pass facts (and the visitor's language) in and get sentences
back. The sentences themselves are in app/locales/<lang>.json's "text" table (keys banner_* and notice_*);
`lang` None or unknown is English. (viz.attribution.UNTRAINED_NOTICE is the library's and the folder CLI's
plain-text warning; the page shows this module's.)
"""
from __future__ import annotations

from pathlib import Path

from alexnet.bvlc import BVLC_SOURCE
from app.i18n import tr


def untrained_notice(lang: str | None = None) -> str:
    """The warning over an untrained model's every result."""
    return tr(lang, "notice_untrained")


UNTRAINED_NOTICE = untrained_notice()     # English: what Loaded.notice appends to the tabs' text


def partial_notice(report: dict, lang: str | None = None) -> str:
    """The warning for a load report (alexnet.weights.load_caffe's `loaded` / `missing` layers)."""
    return tr(lang, "notice_partial", loaded=", ".join(report["loaded"]) or tr(lang, "notice_no_layer"),
              missing=", ".join(report["missing"]))


def knows_line(classes: list[str], lang: str | None = None) -> str:
    """What a model can name: a flowers model answers with one of its classes whatever the photo shows."""
    if len(classes) >= 1000:
        return tr(lang, "banner_knows_all", n=len(classes))
    return tr(lang, "banner_knows_only", n=len(classes), classes=", ".join(classes))


def start_label(meta: dict, lang: str | None = None) -> str:
    """How a checkpoint's weights began, in words (the sidecar's `source`)."""
    src = str(meta.get("source") or "")
    if src.startswith(BVLC_SOURCE):
        flowers = "flower" in str(meta.get("data") or "")
        return tr(lang, "banner_start_bvlc_flowers" if flowers else "banner_start_bvlc_data")
    if src == "scratch":
        return tr(lang, "banner_start_scratch")
    return tr(lang, "banner_start_finetuned", name=Path(src).name) if src else ""


def banner(label: str, device: str, meta: dict, untrained: bool = False, lang: str | None = None) -> str:
    """The banner above every tab: which model, on which device, what it knows, and whether to trust it."""
    msg = tr(lang, "banner_model", label=label, device=device)
    if untrained:
        return msg + "\n\n" + untrained_notice(lang)
    if meta.get("classes"):
        msg += "\n\n" + knows_line(meta["classes"], lang)
    acc = (meta.get("metrics") or {}).get("val_top1")
    if acc is not None:
        msg += " " + tr(lang, "banner_accuracy", acc=acc)
    report = meta.get("load_report") or {}
    if report.get("partial"):
        msg += "\n\n" + partial_notice(report, lang)
    return msg
