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
