"""The guided tour (issue 23, item 4): every step's words and picture from the shipped model, in both languages,
without a browser; the last step's lesson pack."""
from __future__ import annotations

import zipfile

import numpy as np
import pytest

from app.tour import STEPS, view


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    from app.page import build_app
    return build_app(checkpoints_dir=str(tmp_path_factory.mktemp("ckpt"))).page


def test_twelve_steps_from_the_photos_numbers_to_the_lesson_pack(page):
    assert 8 <= len(STEPS) <= 12 and STEPS[0].id == "photo" and STEPS[-1].id == "pack"
    tabs = {s.tab for s in STEPS}
    assert tabs <= set(page.tabs) and {"layers", "filters", "tricks", "classify", "embeddings"} <= tabs
    key = page.registry.choices()[0][1]
    meta = page.registry.get(key).meta
    seen = {}
    for i, step in enumerate(STEPS):
        title, text, picture = view(page, i, None, key, "en")     # no upload: the shipped held-out rose
        assert title.startswith(f"{i + 1} / {len(STEPS)} · ") and len(text) > 80
        if step.id != "pack":
            assert picture is not None and np.asarray(picture).std() > 5, step.id
        seen[step.id] = (title, text)
    size = meta["input_size"]
    assert f"{3 * size * size:,} numbers" in seen["photo"][0]
    assert f"fc8: {len(meta['classes'])} scores" == seen["scores"][0].split(" · ")[1]
    assert "roses (" in seen["scores"][1]                         # the shipped model names the held-out rose


def test_the_tour_in_chinese_has_the_same_numbers(page):
    key = page.registry.choices()[0][1]
    for i, step in enumerate(STEPS[:3]):
        en, zh = view(page, i, None, key, "en")[1], view(page, i, None, key, "zh-CN")[1]
        nums = lambda s: sorted(n.rstrip(".,") for n in __import__("re").findall(r"\d[\d,.]*", s))   # noqa: E731
        assert nums(en) == nums(zh), step.id
        assert en != zh


def test_the_last_step_exports_the_lesson_pack(page):
    from app.tab_layers import lesson_zip
    from app.tour import photo_of
    key = page.registry.choices()[0][1]
    names = zipfile.ZipFile(lesson_zip(page, photo_of(None), key)).namelist()
    assert "lesson.md" in names and "conv5.png" in names
