"""The Layers tab's sentences in the visitor's language: one layer's row of the shape table in words, and the
output-size formula with its numbers. The numbers come from alexnet.shapes; the words from app/locales."""
from __future__ import annotations

from alexnet.shapes import out_side
from app.i18n import tr


def _shape(s) -> str:
    return "x".join(map(str, s))


def layer_words(lang: str | None, row: dict) -> str:
    """One step of the walkthrough in words: shape, operations, output side, parameters, receptive field."""
    lines = [tr(lang, "layer_head", layer=row["layer"], shape_in=_shape(row["in_shape"]), shape_out=_shape(row["out_shape"])),
             tr(lang, "layer_ops", ops=row["ops"])]
    if row["formula"]:
        lines.append(tr(lang, "layer_side", formula=row["formula"]) + ("" if row["exact"] else tr(lang, "layer_inexact")))
    lines.append(tr(lang, "layer_params", weights=row["weights"], biases=row["biases"], macs=row["macs"],
                    neurons=row["neurons"]))
    if row["jump"]:
        lines.append(tr(lang, "layer_rf", rf=row["receptive_field"], jump=row["jump"]))
    return "\n\n".join(lines)


def formula_words(lang: str | None, w: int, f: int, s: int, p: int) -> str:
    """The formula with these numbers, and what it means for the last pixels (ValueError when nothing fits)."""
    o = out_side(w, f, s, p)
    text = tr(lang, "formula_text", formula=o["formula"], exact=o["exact"])
    if o["whole"]:
        return text + tr(lang, "formula_whole", out=o["out"])
    return text + tr(lang, "formula_dropped_one" if o["dropped"] == 1 else "formula_dropped_many", dropped=o["dropped"])
