"""The Fool-the-network tab's handlers (issue 24, item 3), called without a browser on the shipped model and a
held-out photo: the changed photo it offers, uploaded again, gets the answer the tab reported."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app import tab_attack
from app.classify import classify
from viz.attribution import class_index

from conftest import held_out


@pytest.fixture(scope="module")
def rose():
    return held_out("roses")


def test_a_targeted_attack_reaches_tulips_and_the_saved_png_says_so_too(built_page, rose):
    out = tab_attack.fool(built_page, rose, "flowers", "pgd", 8, "tulips", 10, "en")
    original, changed, change, cam_before, cam_after, top_before, top_after, text, png = out
    assert original.shape == changed.shape == change.shape == (256, 256, 3) and changed.dtype == np.uint8
    assert np.abs(changed.astype(int) - original.astype(int)).max() <= 8          # within the chosen epsilon
    assert next(iter(top_before)) == "roses" and next(iter(top_after)) == "tulips"
    assert "now says **tulips**" in text and "8/255" in text
    saved = np.asarray(Image.open(png).convert("RGB"))
    np.testing.assert_array_equal(saved, changed)                                 # the download is the picture shown
    again = classify(built_page, png, "flowers")                                        # uploaded again in the first tab
    assert max(again, key=again.get) == "tulips"
    assert cam_before.size == cam_after.size == (256, 256)


def test_epsilon_zero_changes_nothing_and_says_the_answer_held(built_page, rose):
    original, changed, change, *_, top_before, top_after, text, _ = tab_attack.fool(built_page, rose, "flowers", "fgsm", 0,
                                                                                  "", 10, "zh-CN")
    np.testing.assert_array_equal(original, changed)
    assert (change == 128).all()                                                  # grey: no change anywhere
    assert list(top_before) == list(top_after) and "答案没有变" in text


def test_the_smallest_change_is_a_number_of_steps_that_does_flip(built_page, rose):
    text = tab_attack.smallest(built_page, rose, "flowers", "en")
    k = int(text.split("**")[1].split("/")[0])
    out = tab_attack.fool(built_page, rose, "flowers", "fgsm", k, "", 10, "en")
    assert next(iter(out[5])) != next(iter(out[6]))                               # it flips at k
    if k > 1:
        held = tab_attack.fool(built_page, rose, "flowers", "fgsm", k - 1, "", 10, "en")
        assert next(iter(held[5])) == next(iter(held[6]))                         # and not one step below


def test_the_visitors_mistakes_are_sentences(built_page, rose):
    from alexnet.errors import OptionError
    from app.ui import need_image
    with pytest.raises(OptionError, match="no class 'cats'"):
        tab_attack.fool(built_page, rose, "flowers", "fgsm", 2, "cats", 10, "en")
    with pytest.raises(OptionError, match="eps_pixels must be a whole number from 0 to 16"):
        tab_attack.fool(built_page, rose, "flowers", "fgsm", 40, "", 10, "en")
    with pytest.raises(Exception) as e:
        tab_attack.fool(built_page, None, "flowers", "fgsm", 2, "", 10, "en")
    with pytest.raises(type(e.value)):
        need_image(None)                                                          # the same refusal as every tab
    assert class_index(built_page.registry.meta_of("flowers")["classes"], "tulips") is not None
