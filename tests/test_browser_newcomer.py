"""Chromium on a server that sees what a new user's does: no ../shared, no --data, no network.

Embeddings opens drawn (the map shipped with the flowers model, of the shipped flowers pack) without a
click; an upload gets its place and credited neighbours; the Retrain tab's default Start fine-tunes on
the pack and names its checkpoint.
"""
from __future__ import annotations

import contextlib
import time

import pytest

from app_server import start_server, stop_server
from test_browser import CHROMIUM_ARGS, QUICK, SLOW, assert_picture, open_tab

from playwright.sync_api import expect, sync_playwright  # noqa: E402  (test_browser skipped us if absent)

from conftest import chromium_path


@contextlib.contextmanager
def browse(url: str):
    """A Chromium page on `url`, once the page is up."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        pg = ctx.new_page()
        pg.set_default_timeout(QUICK)
        pg.goto(url, wait_until="domcontentloaded")
        pg.locator("#upload").wait_for(state="visible")
        try:
            yield pg
        finally:
            ctx.close()
            browser.close()


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    work = tmp_path_factory.mktemp("newcomer")
    url, proc, log = start_server(work, newcomer=True)
    try:
        with browse(url) as pg:
            yield pg
    finally:
        stop_server(proc)
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]


def test_embeddings_opens_drawn_without_a_click(page):
    embeddings_open_drawn(page)


def embeddings_open_drawn(page):
    """(also run on the installed wheel by tests/test_package.py)"""
    t0 = time.perf_counter()
    open_tab(page, "Embeddings")
    status = page.locator("#embed-status")
    expect(status).to_contain_text("Map of 500 images", timeout=15_000)
    assert_picture(page.locator("#umap img"), "the shipped fc7 map")
    took = time.perf_counter() - t0
    assert took < 15, f"the map took {took:.1f} s to appear"
    expect(status).to_contain_text("flowers pack: 500 of the 3,667 photos")
    expect(page.locator(".toast-body")).to_have_count(0)                 # no error toast


def test_an_example_photo_gets_its_place_and_credited_neighbours(page):
    open_tab(page, "Classify & Explain")
    page.locator("#examples-flowers img").first.click()
    expect(page.locator("#top5")).to_contain_text("daisy", timeout=SLOW)
    open_tab(page, "Embeddings")
    page.get_by_role("button", name="Build the map (or place my photo on it)").click()
    gallery = page.locator("#neighbours")
    expect(gallery).to_contain_text(", by ", timeout=SLOW)              # each neighbour names its photographer
    expect(page.locator("#neighbour-credit")).to_contain_text("CC-BY 2.0")


def test_retrain_default_start_fine_tunes_on_the_pack_and_a_grad_cam_arrives_meanwhile(page):
    """The default Start (a new fc8 on the pack's fc7 features); while it runs, a held-out photo uploaded in
    Classify gets its Grad-CAM (the run gives way to visitors' cheap passes); then Done names the checkpoint
    and says where the time went."""
    open_tab(page, "Retrain")
    expect(page.locator(".data-line").first).to_contain_text("flowers pack")
    expect(page.locator("#train-depth")).to_contain_text("a new fc8")
    page.get_by_role("button", name="Start training").click()
    status = page.locator("#train-status")
    expect(status).to_contain_text("Training:", timeout=QUICK)
    open_tab(page, "Classify & Explain")
    before = page.locator("#gradcam img").get_attribute("src")
    page.locator("#examples-flowers img").nth(2).click()                 # the held-out rose
    expect(page.locator("#gradcam img")).not_to_have_attribute("src", before, timeout=QUICK)
    assert "Training:" in status.inner_text(), "the run ended before the Grad-CAM came: nothing was measured"
    open_tab(page, "Retrain")
    retrain_done(page)
    expect(status).to_contain_text("Where the time went: decode")
    expect(status).to_contain_text("features")


def retrain_default_start(page):
    """(also run on the installed wheel by tests/test_package.py)"""
    open_tab(page, "Retrain")
    expect(page.locator(".data-line").first).to_contain_text("flowers pack")
    page.get_by_role("button", name="Start training").click()
    retrain_done(page)


def retrain_done(page):
    status = page.locator("#train-status")
    expect(status).to_contain_text("Done", timeout=300_000)
    expect(status).to_contain_text(".safetensors")
    expect(status).to_contain_text("Trained on the flowers pack: 100 validation photos")
