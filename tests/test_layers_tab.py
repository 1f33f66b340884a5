"""The Layers tab's shape table: the current model's fc8, and numbers that never wrap on a projector (issue 23)."""
from __future__ import annotations

from app.page import CSS
from app.tab_layers import DEFAULT_VIEW, table_markdown


def fc8_row(text: str) -> str:
    return next(line for line in text.splitlines() if line.startswith("| fc8 "))


def test_fc8_has_the_current_models_class_count():
    five, thousand = fc8_row(table_markdown(DEFAULT_VIEW, 5)), fc8_row(table_markdown(DEFAULT_VIEW))
    assert "| 4096 | 5 |" in five and "20,480 | 5 |" in five          # 4096 x 5 weights, 5 biases
    assert "| 4096 | 1000 |" in thousand and "4,096,000" in thousand
    assert "Total parameters" in table_markdown(DEFAULT_VIEW, 5)


def test_table_cells_do_not_wrap():
    assert "#shape-table table td" in CSS and "white-space: nowrap" in CSS


def test_the_formula_live_gives_the_papers_three_cases():
    import numpy as np
    from alexnet.shapes import out_side
    from app.lesson_words import formula_words
    from viz.formula import windows
    explain = lambda *a: formula_words("en", *a)   # noqa: E731
    paper = out_side(224, 11, 4, 0)
    assert (paper["out"], paper["exact"], paper["whole"], paper["dropped"]) == (54, 54.25, False, 1)
    assert out_side(227, 11, 4, 0)["out"] == 55 and out_side(227, 11, 4, 0)["whole"]
    assert out_side(224, 11, 4, 2)["out"] == 55 and out_side(224, 11, 4, 2)["dropped"] == 1
    assert "54.25" in explain(224, 11, 4, 0) and "drops 1 pixel" in explain(224, 11, 4, 0)
    assert "end exactly" in explain(227, 11, 4, 0)
    def never_read(picture):                               # the red input pixels of the drawing's top strip
        a = np.asarray(picture)[5]
        return int(((a[:, 0] == 230) & (a[:, 1] == 70)).sum())
    cell = max(2, 960 // 224)
    assert never_read(windows(224, 11, 4, 0)) == cell        # exactly one input pixel, drawn `cell` wide
    assert never_read(windows(227, 11, 4, 0)) == 0
    for bad in ((10, 11, 4, 0), (224, 11, 0, 0)):
        try:
            out_side(*bad)
        except ValueError as e:
            assert "kernel" in str(e) or "at least" in str(e)
        else:
            raise AssertionError(f"{bad} should be refused")
