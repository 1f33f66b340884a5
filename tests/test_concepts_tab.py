"""The Concepts tab's handler (issue 24, item 2) without a browser: on the shipped model the strip's channels are
the library's top channels for the class, and the semantic dictionary comes from the shipped icons at once."""
from __future__ import annotations

import time

import numpy as np

from app import tab_concepts
from viz import concepts as C

from conftest import held_out


def test_the_strip_names_the_librarys_top_channels_and_the_dictionary_is_drawn(built_page):
    rose = held_out("roses")
    strip, seen, dictionary, text = tab_concepts.see(built_page, rose, "flowers", "", 5, "en", progress=lambda *a, **k: None)
    loaded = built_page.registry.get("flowers")
    x, _ = loaded.prepare(rose)
    want = C.top_channels(loaded.model, x, loaded.meta["classes"].index("roses"), k=5)
    assert "For **roses**" in text and ", ".join(f"{c} ({r:+.3g})" for c, r in want) in text
    assert strip.size[1] > 5 * 80 and seen.size == (227, 227)                     # five rows; the crop it saw
    assert dictionary is not None and dictionary.size == (13 * C.CELL_PX, 13 * C.CELL_PX)
    assert "not made yet" not in text and np.asarray(dictionary).std() > 10       # icons, not a blank page
    t0 = time.perf_counter()
    tab_concepts.see(built_page, rose, "flowers", "tulips", 3, "zh-CN", progress=lambda *a, **k: None)
    assert time.perf_counter() - t0 < 20                                          # the dataset pass was kept


def test_an_untrained_model_has_no_icons_yet_and_says_so(built_page):
    strip, _, dictionary, text = tab_concepts.see(built_page, held_out("daisy"), "untrained", "", 3, "zh-CN",
                                                   progress=lambda *a, **k: None)
    assert dictionary is None and "图标还没有生成" in text and strip is not None
