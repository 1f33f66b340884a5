"""The classroom walkthrough in headless Chromium (issue 23): the network drawn and clicked, the paper's tricks on
a photo, the guided tour from first step to last, and the page in English and 简体中文.

Its own browser context on the session's server (tests/conftest.py app_server), one visitor for the module:
tests run in file order and build on each other. Helpers are test_browser's.
"""
from __future__ import annotations

import pytest

from test_browser import CHROMIUM_ARGS, QUICK, assert_picture, open_tab, save_shot

from playwright.sync_api import expect, sync_playwright  # noqa: E402  (test_browser skipped us if absent)

from conftest import chromium_path


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("classroom-shots")


@pytest.fixture(scope="module")
def photo():
    from app.examples import flower_examples
    return next(e.path for e in flower_examples() if e.label == "roses")


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def open_page(browser, url: str, locale: str):
    ctx = browser.new_context(viewport={"width": 1400, "height": 900}, locale=locale)
    pg = ctx.new_page()
    pg.set_default_timeout(QUICK)
    pg.goto(url, wait_until="domcontentloaded")
    pg.locator("#upload").wait_for(state="visible")
    return ctx, pg


@pytest.fixture(scope="module")
def page(browser, app_server, photo):
    ctx, pg = open_page(browser, app_server["url"], "en-US")
    pg.locator("#upload input[type=file]").set_input_files(str(photo))
    expect(pg.locator("#top5")).to_contain_text("%", timeout=QUICK)
    yield pg
    ctx.close()


def shipped_blocks():
    """Where the library draws each block for the shipped model (the page draws the same picture)."""
    from alexnet import weights as W
    from alexnet.compact import SHIPPED
    from alexnet.shapes import spec_table
    from viz.diagram import draw
    _, meta = W.load(str(SHIPPED))
    d = draw(spec_table(meta["spec"], meta["input_size"]), classes=meta["classes"])
    return d.image.width, d.blocks


def test_the_network_is_drawn_and_a_click_on_conv3_opens_it(page, shots):
    open_tab(page, "Layers")
    img = page.locator("#diagram img")
    assert_picture(img, "the network diagram")
    page.wait_for_function("el => el.naturalWidth > 1000", arg=img.element_handle())
    width, blocks = shipped_blocks()
    assert img.evaluate("el => el.naturalWidth") == width
    conv3 = next(b for b in blocks if b.layer == "conv3")
    box = img.bounding_box()
    scale = box["width"] / width
    x, y = (conv3.face[0] + conv3.face[2]) / 2, (conv3.face[1] + conv3.face[3]) / 2
    img.click(position={"x": x * scale, "y": y * scale})
    info = page.locator("#walk-info")
    expect(info).to_contain_text("Step 5 of 11", timeout=QUICK)
    expect(info).to_contain_text("conv3: 256x13x13 -> 384x13x13")
    assert_picture(page.locator("#walk-picture img"), "conv3's maps")
    save_shot(page, shots, "diagram")


def test_the_papers_tricks_on_the_photo(page, shots):
    open_tab(page, "Paper's tricks")
    page.locator("#tricks-go").click()
    for name in ("relu", "lrn", "pool", "dropout", "augmentation"):
        expect(page.locator(f"#trick-{name}-text")).to_contain_text("Measured by this project's report", timeout=QUICK)
        assert_picture(page.locator(f"#trick-{name}-img img"), f"the {name} view")
    expect(page.locator("#trick-dropout-text")).to_contain_text("top-1 stays **roses**".replace("**", ""))
    before = page.locator("#trick-augmentation-text").inner_text()
    page.locator("#tricks-again").click()
    expect(page.locator("#trick-augmentation-text")).not_to_have_text(before, timeout=QUICK)   # new crops
    assert_picture(page.locator("#trick-augmentation-img img"), "the new crops")
    save_shot(page, shots, "tricks")


def test_the_tour_goes_from_its_first_step_to_its_last(page, shots):
    from app.tour import STEPS
    page.locator("#tour").get_by_text("Guided tour").click()
    nxt = page.locator("#tour-next")
    title = page.locator("#tour-title")
    tab_of = {"classify": "Classify & Explain", "layers": "Layers", "filters": "Filters", "tricks": "Paper's tricks",
              "embeddings": "Embeddings"}
    for i, step in enumerate(STEPS):
        nxt.click()
        expect(title).to_contain_text(f"{i + 1} / {len(STEPS)}", timeout=QUICK)
        expect(page.get_by_role("tab", name=tab_of[step.tab], exact=True)).to_have_attribute("aria-selected", "true")
        if step.id != "pack":
            assert_picture(page.locator("#tour-picture img"), f"tour step {step.id}")
        if step.id == "conv1":
            save_shot(page, shots, "tour-conv1-en")
    font = page.locator("#tour-text").evaluate("el => parseFloat(getComputedStyle(el).fontSize)")
    assert font >= 20, f"tour text {font}px: too small for a projector"
    page.locator("#tour-pack").click()
    expect(page.locator("#tour-pack-file a[download]")).to_be_visible(timeout=QUICK)
    page.locator("#tour-back").click()
    expect(title).to_contain_text(f"{len(STEPS) - 1} / {len(STEPS)}", timeout=QUICK)


@pytest.mark.parametrize("locale, tab, button", [("zh-CN", "层 (Layers)", "下一步 ▶"), ("en-US", "Layers", "Next step ▶")])
def test_the_browsers_language_chooses_the_labels(browser, app_server, photo, locale, tab, button, shots):
    ctx, pg = open_page(browser, app_server["url"], locale)
    try:
        pg.locator("#upload input[type=file]").set_input_files(str(photo))
        expect(pg.locator("#top5")).to_contain_text("%", timeout=QUICK)
        expect(pg.get_by_role("tab", name=tab, exact=True)).to_be_visible(timeout=QUICK)
        pg.locator("#tour").click()
        expect(pg.locator("#tour-next")).to_have_text(button)
        pg.locator("#tour-next").click()                      # words a handler writes follow the language too
        expect(pg.locator("#tour-title")).to_contain_text("一张照片就是" if locale == "zh-CN" else "A photo is",
                                                          timeout=QUICK)
        save_shot(pg, shots, f"tour-{locale}")
        open_tab(pg, tab)    # a handler's sentences in the Layers tab too
        pg.locator("#walk-info").scroll_into_view_if_needed()
        pg.get_by_role("button", name="下一层 ▶" if locale == "zh-CN" else "Next ▶", exact=True).click()
        expect(pg.locator("#walk-info")).to_contain_text("第 1 步，共 11 步" if locale == "zh-CN" else "Step 1 of 11",
                                                         timeout=QUICK)
        other = "en" if locale == "zh-CN" else "zh-CN"         # the visible switch, both ways
        pg.locator(f"#lang-{other}").click()
        expect(pg.get_by_role("tab", name="Layers" if other == "en" else "层 (Layers)", exact=True)).to_be_visible()
        pg.locator("#tour-next").click()
        expect(pg.locator("#tour-title")).to_contain_text("The network" if other == "en" else "按比例画出的网络",
                                                          timeout=QUICK)
    finally:
        ctx.close()


def test_an_error_is_written_in_the_visitors_language(browser, app_server):
    ctx, pg = open_page(browser, app_server["url"], "zh-CN")
    try:
        open_tab(pg, "层 (Layers)")
        pg.get_by_role("button", name="下一层 ▶", exact=True).click()          # no photo yet
        expect(pg.get_by_text("请先上传一张图片").first).to_be_visible(timeout=QUICK)
    finally:
        ctx.close()


def test_a_chinese_visitor_reads_the_handlers_sentences_in_chinese(browser, app_server, photo):
    """Sentences handlers write (not only labels): the Filters summary, the About facts, a unit's arithmetic."""
    ctx, pg = open_page(browser, app_server["url"], "zh-CN")
    try:
        open_tab(pg, "滤波器 (Filters)")
        expect(pg.locator("#filters-summary")).to_contain_text("第 0 组", timeout=QUICK)
        expect(pg.locator("#bvlc-summary")).to_contain_text("与颜色无关 (colour-agnostic)", timeout=QUICK)
        open_tab(pg, "关于 (About)")
        expect(pg.locator("#about-facts")).to_contain_text("本项目", timeout=QUICK)
        expect(pg.locator("#about-facts")).to_contain_text("60,965,224")
        open_tab(pg, "分类与解释 (Classify & Explain)")
        pg.locator("#upload input[type=file]").set_input_files(str(photo))
        expect(pg.locator("#top5")).to_contain_text("%", timeout=QUICK)
        open_tab(pg, "层 (Layers)")
        pg.get_by_text("一个单元的算术").click()
        pg.get_by_role("button", name="显示它的算术").click()          # conv1, channel 0 at (27, 27)
        expect(pg.locator("#unit-arithmetic")).to_contain_text("363 个乘积之和", timeout=QUICK)
        expect(pg.locator("#unit-arithmetic")).to_contain_text("conv1 通道 0，位置 (27, 27)")
    finally:
        ctx.close()
