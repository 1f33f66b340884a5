"""The Layers tab's sentences in the visitor's language: one layer's row of the shape table in words, and the
output-size formula with its numbers, one unit's arithmetic. The numbers come from alexnet.shapes and
viz.arithmetic; the words from app/locales."""
from __future__ import annotations

from alexnet.shapes import out_side
from app.i18n import tr
from viz.arithmetic import Arithmetic


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


def _sum(lang: str | None, a: Arithmetic) -> str:
    """A conv or fc unit's computation in one line: "sum of 363 products + bias = 4.21 -> ReLU -> 4.21"."""
    text = tr(lang, "unit_sum", n=f"{a.n_terms:,}", pre=f"{a.pre_activation:.4g}")
    if a.activation:
        text += f" -> {a.activation} -> {a.value:.4g}"
    if a.groups > 1:
        lo, hi = a.reads_channels
        text += tr(lang, "unit_group", lo=lo, hi=hi - 1, g=lo // (hi - lo) + 1, groups=a.groups)
    return text


def unit_words(lang: str | None, a: Arithmetic) -> str:
    """One unit's arithmetic as Markdown: the sentence, then the largest products (the rest summed in one row),
    a pool's window with its winner in bold, or an LRN unit's neighbours."""
    where = tr(lang, "unit_where_fc" if a.kind == "fc" else "unit_where", layer=a.layer, c=a.channel, y=a.y, x=a.x)
    if a.kind in ("conv", "fc"):
        sentence = _sum(lang, a)
    elif a.kind == "pool":
        k = len(a.patch)
        sentence = tr(lang, "unit_pool", n=a.patch.size, k=k, value=f"{a.value:.4g}")
    else:
        sentence = a.sentence                       # LRN: the formula with its numbers, no words to translate
    lines = [f"**{where}**: {sentence}"]
    if a.terms:
        lines += ["", tr(lang, "unit_table_head"), "|---|---|---|---|"]
        lines += [f"| {w} | {v:.4g} | {k:.4g} | {p:.4g} |" for w, v, k, p in a.terms]
        lines.append(tr(lang, "unit_rest", n=f"{a.n_terms - len(a.terms):,}", rest=f"{a.rest:.4g}"))
        lines.append(tr(lang, "unit_bias", bias=f"{a.bias:.4g}"))
    if a.kind == "pool" and a.patch is not None:
        rows = [" ".join(f"**{v:.3g}**" if (r, q) == a.winner else f"{v:.3g}" for q, v in enumerate(row))
                for r, row in enumerate(a.patch)]
        lines += ["", tr(lang, "unit_window"), ""] + [f"    {r}" for r in rows]
    if a.kind == "lrn":
        lines += ["", tr(lang, "unit_neighbours") + ", ".join(f"ch{c} = {v:.4g}" for c, v in a.neighbours)]
    return "\n".join(lines)
