"""Chromium, issue 24: LRP, the concepts, fooling the network and two models side by side, each drawn on the
shipped model by a server that sees what a new user's does (no ../shared, no --data, no network).

The held-out rose of the package's examples is the photo throughout; what the page shows is checked against
the library run here on the same photo (LRP's .npy, the strip's channels, the attack's answer)."""
from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from app_server import start_server, stop_server
from test_browser import QUICK, SLOW, assert_picture, open_tab, save_shot
from test_browser_newcomer import browse

from playwright.sync_api import expect  # noqa: E402  (test_browser skipped us if absent)

from conftest import held_out

ROSE = 2          # the rose is the third of the held-out examples (daisy, dandelion, roses, sunflowers, tulips)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    work = tmp_path_factory.mktemp("beyond")
    url, proc, log = start_server(work, newcomer=True)
    try:
        with browse(url) as pg:
            open_tab(pg, "Classify & Explain")
            pg.locator("#examples-flowers img").nth(ROSE).click()
            expect(pg.locator("#top5")).to_contain_text("roses", timeout=SLOW)
            yield pg
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def shipped():
    from alexnet import weights as W
    from alexnet.compact import SHIPPED
    model, meta = W.load(str(SHIPPED))
    return model.eval(), meta


def test_lrp_map_is_drawn_and_its_npy_is_the_librarys(page, shipped, shots):
    from viz.attribution import explain
    open_tab(page, "Classify & Explain")
    page.locator("#method input").click()
    page.get_by_role("option", name=re.compile(r"^LRP")).click()
    link = page.locator("#attribution-npy a")
    expect(link).to_have_attribute("href", re.compile(r"lrp-roses\.npy"), timeout=QUICK)
    assert_picture(page.locator("#attribution img"), "the LRP map")
    got = np.load(io.BytesIO(page.request.get(link.get_attribute("href")).body()))
    model, meta = shipped
    want = explain(model, Image.open(held_out("roses")).convert("RGB"), meta["classes"].index("roses"), "lrp",
                   meta=meta).heatmap
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * float(want.max()))
    save_shot(page, shots, "lrp")


def test_concepts_strip_and_dictionary(page, shipped, shots):
    from alexnet.images import open_image, preprocess
    from viz.concepts import top_channels
    open_tab(page, "Concepts")
    page.locator("#concepts-go").click()
    text = page.locator("#concepts-text")
    expect(text).to_contain_text("For roses", timeout=SLOW)
    model, meta = shipped
    x = preprocess(open_image(held_out("roses")), meta["input_size"], meta["mean"], meta["std"])
    first, _ = top_channels(model, x, meta["classes"].index("roses"), k=1)[0]
    expect(text).to_contain_text(re.compile(rf"its score: {first} \("))         # the library's top channel first
    assert_picture(page.locator("#concepts-strip img"), "the concept strip")
    assert_picture(page.locator("#concepts-dictionary img"), "the semantic dictionary")
    save_shot(page, shots, "concepts")


def test_fool_the_network_into_tulips(page, shots):
    open_tab(page, "Fool the network")
    page.get_by_label("PGD (many small steps)").check()
    eps = page.locator("#attack-eps input[type=number]")
    eps.fill("8")
    eps.press("Enter")
    target = page.locator("#attack-target input")
    target.click()
    page.get_by_role("option", name="tulips", exact=True).click()
    page.locator("#attack-go").click()
    expect(page.locator("#attack-text")).to_contain_text("now says tulips", timeout=SLOW)
    expect(page.locator("#attack-top5-after")).to_contain_text("tulips")
    expect(page.locator("#attack-top5-before")).to_contain_text("roses")
    for part in ("original", "changed", "change", "cam-before", "cam-after"):
        assert_picture(page.locator(f"#attack-{part} img"), part)
    expect(page.locator("#attack-png a")).to_have_attribute("href", re.compile(r"fooled-tulips-8\.png"))
    save_shot(page, shots, "attack")


def test_two_models_side_by_side(page, shots):
    open_tab(page, "Two models")
    page.locator("#compare-go").click()
    expect(page.locator("#compare-a-line")).to_contain_text("says roses", timeout=SLOW)   # progress shows there first
    expect(page.locator("#compare-b-line")).to_contain_text(re.compile(r"untrained.* says .*untrained", re.S | re.I))
    for side in ("a", "b"):
        for part in ("map", "conv1", "fc7"):
            assert_picture(page.locator(f"#compare-{side}-{part} img"), f"{side} {part}")
    save_shot(page, shots, "compare")
