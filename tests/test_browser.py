"""A visitor's walk through every tab, in headless Chromium (Playwright) against the real server.

One page for the whole module, like one visitor: the photo uploaded in the first tab is the one
the Filters, Layers and Embeddings tabs use. Tests run in file order and build on each other.
Assertions are on visible text and on pictures that are not blank (pixel spread of the element's
screenshot). A screenshot of each tab is kept in a pytest temporary folder.
"""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import FLOWERS, chromium_path

pw = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
if chromium_path() is None:
    pytest.skip("no Chromium found on PATH (chromium or chromium-browser); browser tests need one",
                allow_module_level=True)

from playwright.sync_api import expect, sync_playwright  # noqa: E402

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
QUICK = 60_000      # ms: an action on a busy 2-core machine
SLOW = 120_000      # ms: dataset decode + fc7 + UMAP, or a training run


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    if FLOWERS.is_dir():
        found = sorted((FLOWERS / "daisy").glob("*.jpg"))
        if found:
            return found[0]
    from PIL import Image
    p = tmp_path_factory.mktemp("photo") / "photo.jpg"
    yy, xx = np.mgrid[0:180, 0:240]
    rgb = np.stack([xx, yy, (xx + yy) // 2], -1) % 256
    Image.fromarray(rgb.astype(np.uint8)).save(p)
    return p


@pytest.fixture(scope="module")
def page(app_server):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS, headless=True)
        ctx = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        pg = ctx.new_page()
        pg.set_default_timeout(QUICK)
        # not "networkidle": the page keeps a connection open, and web fonts cannot load offline
        pg.goto(app_server["url"], wait_until="domcontentloaded")
        pg.locator("#upload").wait_for(state="visible")
        yield pg
        ctx.close()
        browser.close()


def picture_spread(locator) -> float:
    """Standard deviation of the element's rendered pixels: ~0 for an empty or one-colour box."""
    from PIL import Image
    locator.scroll_into_view_if_needed()
    im = Image.open(io.BytesIO(locator.screenshot())).convert("L")
    assert im.width > 32 and im.height > 32, im.size
    return float(np.asarray(im, dtype=np.float32).std())


def assert_picture(locator, what: str) -> None:
    expect(locator).to_be_visible()
    expect(locator).to_have_attribute("src", re.compile(r"\S"))
    # wait for the browser to decode it, then look at the pixels
    locator.page.wait_for_function("el => el.complete && el.naturalWidth > 0", arg=locator.element_handle())
    # Gradio fades an output while its event still streams (a slow method's second frame): look again for a
    # few seconds before calling it blank
    deadline, spread = time.time() + 10, 0.0
    while time.time() < deadline and (spread := picture_spread(locator)) <= 8.0:
        time.sleep(0.5)
    assert spread > 8.0, f"{what} is blank"


def save_shot(page, shots: Path, name: str) -> Path:
    path = shots / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    assert path.is_file() and path.stat().st_size > 10_000, path
    return path


def open_tab(page, name: str) -> None:
    """Select a tab by its title; Gradio folds the tabs that do not fit the window into its "More tabs" menu
    (ten tabs in Chinese at 1400 px), and a tab chosen there joins the row, selected."""
    tab = page.get_by_role("tab", name=name, exact=True)
    if tab.count():
        tab.click()
    else:
        page.get_by_role("button", name="More tabs").click()
        page.locator(".overflow-dropdown button").filter(has_text=re.compile(rf"^{re.escape(name)}$")).click()
    expect(tab).to_have_attribute("aria-selected", "true")


# ------------------------------------------------------------------ Classify & Explain
def test_classify_upload_shows_top5_and_maps(page, photo, shots):
    page.locator("#upload input[type=file]").set_input_files(str(photo))
    top5 = page.locator("#top5")
    expect(top5).to_contain_text("%", timeout=QUICK)
    expect(page.locator("#top5 [data-testid='label-output-value'], #top5 h2").first).to_be_visible()
    # five confidence rows under the big label
    rows = page.locator("#top5").get_by_text(re.compile(r"^\s*\d+(\.\d+)?%\s*$"))
    expect(rows).to_have_count(5)
    # a fresh cache opens on the shipped flowers model, which says what it can name
    expect(page.locator("#banner")).to_contain_text("flowers AlexNet")
    expect(page.locator("#banner")).to_contain_text("daisy, dandelion, roses, sunflowers, tulips")
    expect(page.locator("#classify-notice")).to_contain_text("Knows only 5 classes")
    assert_picture(page.locator("#attribution img"), "the saliency map")
    assert_picture(page.locator("#gradcam img"), "the Grad-CAM map")
    save_shot(page, shots, "classify")


def test_switching_method_updates_attribution(page, shots):
    img = page.locator("#attribution img")
    before = img.get_attribute("src")
    page.locator("#method input").click()
    page.get_by_role("option", name="Grad-CAM (at the layer chosen below)").click()
    expect(page.locator("#method input")).to_have_value("Grad-CAM (at the layer chosen below)")
    expect(img).not_to_have_attribute("src", before, timeout=QUICK)
    assert_picture(img, "the Grad-CAM attribution")
    save_shot(page, shots, "classify-gradcam")


def test_clicking_a_top5_class_explains_that_class(page, shots):
    img = page.locator("#attribution img")
    rows = page.locator("#top5 button.confidence-set")
    expect(rows).to_have_count(5)
    second = rows.nth(1)
    name = second.get_attribute("data-testid").removesuffix("-confidence-set")
    before = img.get_attribute("src")
    second.click()
    expect(page.locator("#target input")).to_have_value(name)       # the class is now the target...
    expect(img).not_to_have_attribute("src", before, timeout=QUICK)  # ...and the map was redrawn for it
    assert_picture(img, f"the attribution for {name}")
    download = page.locator("#attribution-npy a").first           # the raw map for that class, as .npy
    expect(download).to_have_attribute("href", re.compile(rf"{re.escape(name)}\.npy"))
    save_shot(page, shots, "classify-second-class")


def library_top1(path: str) -> str:
    """The shipped model's answer for a photo, computed here in the test process."""
    from alexnet.compact import SHIPPED
    from alexnet.images import preprocess
    from alexnet.weights import load
    model, meta = load(SHIPPED)
    x = preprocess(path, meta["input_size"], meta["mean"], meta["std"])
    return meta["classes"][int(model.eval()(x).argmax())]


def test_a_held_out_flower_example_is_one_click_away(page, shots):
    """The first thumbnail is a daisy the shipped model never trained on; one click classifies it, and
    the page's top-1 is what the library answers for that file."""
    from app.examples import flower_examples
    daisy = flower_examples()[0]
    want = library_top1(daisy.path)
    shown = page.locator("#upload img")
    before = shown.get_attribute("src")
    page.locator("#examples-flowers img").first.click()
    expect(shown).not_to_have_attribute("src", before, timeout=QUICK)
    rows = page.locator("#top5 button.confidence-set")
    expect(rows.first).to_have_attribute("data-testid", f"{want}-confidence-set", timeout=QUICK)
    expect(rows).to_have_count(5)
    assert_picture(page.locator("#gradcam img"), f"the Grad-CAM map for the {daisy.label} example")
    save_shot(page, shots, "classify-example")


def choose_method(page, label: str) -> None:
    page.locator("#method input").click()
    page.get_by_role("option", name=label).click()
    expect(page.locator("#method input")).to_have_value(label)


def test_a_slow_method_never_holds_back_the_top5(page, app_server, shots):
    """Integrated Gradients chosen, and five other visitors' IG requests keep the slow lane busy: a new
    upload's top-5 and Grad-CAM come from the cheap panel at once, while the IG requests still run;
    the upload's own IG map follows. Before, the handler returned everything together, after its IG."""
    from gradio_client import Client, handle_file
    from app.examples import flower_examples
    rose = next(e for e in flower_examples() if e.label == "roses")
    want = library_top1(rose.path)
    choose_method(page, "Integrated Gradients (32 steps)")
    client = Client(app_server["url"], verbose=False, download_files=str(app_server["work"] / "downloads"))
    busy = [client.submit(handle_file(rose.path), "integrated_gradients", api_name="/explain") for _ in range(5)]
    time.sleep(0.3)
    cam = page.locator("#gradcam img")
    before = cam.get_attribute("src")
    page.locator("#upload input[type=file]").set_input_files(rose.path)
    expect(page.locator("#top5 button.confidence-set").first).to_have_attribute(
        "data-testid", f"{want}-confidence-set", timeout=QUICK)
    expect(cam).not_to_have_attribute("src", before or "", timeout=QUICK)
    assert not busy[-1].done(), "the top-5 waited for the other visitors' Integrated Gradients"
    # the upload's own IG runs after the five busy ones and the method switch's redraw: seconds on a busy CPU
    expect(page.locator("#attribution img")).to_be_visible(timeout=SLOW)
    assert_picture(page.locator("#attribution img"), "the Integrated Gradients map, which follows")
    for job in busy:
        job.result(timeout=300)
    choose_method(page, "Saliency (gradient)")


# ------------------------------------------------------------------ Filters
def test_filters_tab_shows_bvlc_and_current_conv1_without_a_click(page, shots):
    open_tab(page, "Filters")
    assert page.get_by_role("button", name="Show conv1 filters").count() == 0
    bvlc = page.locator("#bvlc-summary")       # the paper's Figure 3 from the real 2012 weights
    expect(bvlc).to_contain_text("BVLC ImageNet")
    expect(bvlc).to_contain_text("colour-agnostic")
    expect(bvlc).to_contain_text("colour-specific")
    expect(bvlc).to_contain_text("AUC")
    assert_picture(page.locator("#bvlc-grid img"), "the BVLC conv1 grid")
    summary = page.locator("#filters-summary")
    expect(summary).to_contain_text("group 0", timeout=QUICK)
    expect(summary).to_contain_text("group 1")   # the paper model has two towers
    assert "untrained" not in summary.inner_text()
    assert_picture(page.locator("#filter-grid img"), "the conv1 filter grid")
    save_shot(page, shots, "filters")


# ------------------------------------------------------------------ Layers
def test_layers_table_and_step_through(page, shots):
    open_tab(page, "Layers")
    table = page.locator("#shape-table")
    expect(table).to_contain_text("96x55x55")
    expect(table).to_contain_text("227")
    fc8 = table.locator("tr", has_text="fc8")
    expect(fc8).to_contain_text("20,480")                  # 4096 x 5: the shipped flowers model's fc8, not 1,000 classes
    cell = table.locator("td", has_text="58,621,952").or_(table.locator("td").nth(8))
    assert cell.first.evaluate("el => getComputedStyle(el).whiteSpace") == "nowrap"   # no number breaks mid-digit
    info = page.locator("#walk-info")
    nxt = page.get_by_role("button", name="Next ▶")
    nxt.click()
    expect(info).to_contain_text("Step 1 of 11", timeout=QUICK)
    expect(info).to_contain_text("conv1: 3x227x227 -> 96x55x55")
    nxt.click()
    expect(info).to_contain_text("Step 2 of 11", timeout=QUICK)
    expect(info).to_contain_text("pool1: 96x55x55 -> 96x27x27")
    save_shot(page, shots, "layers")


def test_layers_export_lesson_pack(page, shots, tmp_path):
    page.get_by_role("button", name=re.compile(r"Export lesson pack")).click()
    link = page.locator("a[download][href*='.zip']")
    expect(link).to_be_visible(timeout=QUICK)
    expect(link).to_have_attribute("download", re.compile(r"lesson\.zip$"))
    with page.expect_download(timeout=QUICK) as dl:
        link.first.click()
    target = tmp_path / dl.value.suggested_filename
    dl.value.save_as(target)
    import zipfile
    names = zipfile.ZipFile(target).namelist()
    assert "lesson.md" in names and "conv1.png" in names, names
    save_shot(page, shots, "layers-export")


def test_the_formula_live_switches_between_the_papers_224_and_227(page, shots):
    page.get_by_text("The formula, live").click()
    text = page.locator("#formula-text")
    page.get_by_role("button", name="227 (what Caffe used)").click()
    expect(text).to_contain_text("= 55", timeout=QUICK)
    expect(text).to_contain_text("end exactly at the last pixel")
    page.get_by_role("button", name="the paper's 224").click()
    expect(text).to_contain_text("54.25", timeout=QUICK)
    expect(text).to_contain_text("drops 1 pixel")
    page.locator("#f-s input").fill("3")                      # a stride typed in: recomputed at once
    page.locator("#f-s input").press("Enter")
    expect(text).to_contain_text("floor((224 - 11 + 2*0) / 3) + 1 = 72", timeout=QUICK)   # 213 / 3: whole
    assert_picture(page.locator("#formula-img img"), "the windows picture")
    save_shot(page, shots, "layers-formula")


def test_clicking_the_photo_shows_a_conv1_units_box_and_the_librarys_sum(page, photo, shots):
    """Issue 23: a click picks a conv1 unit; the page boxes its receptive field and writes a sum whose value is
    the library's (viz.arithmetic on the same photo and the shipped model, run here)."""
    from alexnet import weights as W
    from alexnet.compact import SHIPPED
    from alexnet.images import open_image, preprocess
    from viz.arithmetic import trace, unit_arithmetic
    page.get_by_text("One unit's arithmetic").click()
    page.get_by_role("button", name="Show its arithmetic").click()
    text = page.locator("#unit-arithmetic")
    expect(text).to_contain_text("363 products", timeout=QUICK)
    img = page.locator("#unit-photo img")
    assert_picture(img, "the unit's photo")
    box = img.bounding_box()
    img.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.2})     # near the photo's top left
    expect(text).not_to_contain_text("at (27, 27)", timeout=QUICK)
    y, x = (int(page.locator(f"#unit-{k} input").input_value()) for k in ("y", "x"))
    assert (y, x) != (27, 27) and x < 27 and y < 27
    model, meta = W.load(str(SHIPPED))
    xin = preprocess(open_image(str(photo)), meta["input_size"], meta["mean"], meta["std"])
    a = unit_arithmetic(model.eval(), trace(model.eval(), xin), "conv1", 0, y, x)
    expect(text).to_contain_text(f"conv1 channel 0 at ({y}, {x})")
    expect(text).to_contain_text(f"-> ReLU -> {a.value:.4g}")
    from PIL import Image
    shot = np.asarray(Image.open(io.BytesIO(img.screenshot())).convert("RGB")).astype(int)
    red = (shot[..., 0] > 200) & (shot[..., 1] < 90) & (shot[..., 2] < 90)
    assert red.sum() > 40, "no red receptive-field box on the photo"
    save_shot(page, shots, "layers-unit")


# ------------------------------------------------------------------ Embeddings
def test_embeddings_build_map(page, shots):
    open_tab(page, "Embeddings")
    page.get_by_role("button", name=re.compile(r"Build the map")).click()
    status = page.locator("#embed-status")
    expect(status).to_contain_text("24 images, 3 classes", timeout=SLOW)
    expect(status).to_contain_text("daisy")
    assert_picture(page.locator("#umap img"), "the UMAP map")
    save_shot(page, shots, "embeddings")


def test_one_unit_top_patches_and_feature_visualisation(page, shots):
    page.get_by_text("One conv5 unit").click()                          # open the accordion
    page.get_by_role("button", name="Show its top patches").click()
    expect(page.locator("#unit-status")).to_contain_text("conv5 unit 0: receptive field 163x163", timeout=SLOW)
    expect(page.locator("#top-patches img")).to_have_count(9)            # 24 photos, the 9 best, one per photo
    assert_picture(page.locator("#unit-map img"), "the unit's map on the photo")
    page.get_by_role("button", name=re.compile(r"Synthesise what it looks for")).click()
    expect(page.locator("#feature-vis-text")).to_contain_text("after 256 steps", timeout=SLOW)
    assert_picture(page.locator("#feature-vis img"), "the feature visualisation")
    save_shot(page, shots, "embeddings-unit")


# ------------------------------------------------------------------ Retrain
def test_retrain_start_then_cancel(page, shots):
    open_tab(page, "Retrain")
    status = page.locator("#train-status")
    expect(status).to_contain_text("No training run yet")
    page.get_by_label("Use at most N images (0 = all)").fill("24")
    page.get_by_label("Epochs").fill("1")
    # a short run of the paper model from scratch (fine-tuning is tested in test_train.py)
    page.get_by_label("From scratch (paper model)").check()
    page.get_by_role("button", name="Start training").click()
    expect(status).to_contain_text(re.compile(r"Training:|Done in"), timeout=QUICK)
    page.get_by_role("button", name="Cancel", exact=True).click()
    # either the cancel reached the running job, or the tiny run had already finished
    expect(status).to_contain_text(re.compile(r"Cancel|Done in|No training run is in progress"), timeout=QUICK)
    page.get_by_role("button", name="Show the current run").click()
    expect(status).to_contain_text(re.compile(r"Cancelled\.|Done in"), timeout=SLOW)
    assert "error" not in status.inner_text().lower()
    save_shot(page, shots, "retrain")


def test_retrain_tiny_run_to_the_end(page, shots):
    """A whole (tiny) run: curves, a confusion matrix over the validation split, conv1 before/after."""
    status = page.locator("#train-status")
    page.get_by_label("Use at most N images (0 = all)").fill("24")
    page.get_by_label("Epochs").fill("1")
    page.get_by_label("From scratch (paper model)").check()
    page.get_by_role("button", name="Start training").click()
    expect(status).to_contain_text("Done in", timeout=SLOW)
    expect(status).to_contain_text("best val accuracy")
    # "Done" is shown as soon as training ends; the evaluation behind the confusion matrix follows it,
    # and with it the final redraw of the curves
    expect(page.locator("#confusion img")).to_be_visible(timeout=QUICK)
    assert_picture(page.locator("#confusion img"), "the confusion matrix")
    assert_picture(page.locator("#curves img"), "the training curves")
    save_shot(page, shots, "retrain-done")
    # the new checkpoint is offered in the model list without a manual refresh
    page.locator("#model-key input").click()
    options = page.get_by_role("option", name=re.compile(r"checkpoint: "))
    expect(options.first).to_be_visible(timeout=QUICK)
    # this run's -best and -last (the cancel test's run may also have finished before its Cancel landed)
    names = options.all_inner_texts()
    stems = {re.sub(r"-(best|last)\b.*", "", n) for n in names}
    assert any(f"{stem}-best" in " ".join(names) and f"{stem}-last" in " ".join(names) for stem in stems), names
    page.keyboard.press("Escape")


def choose_model(page, text: str) -> None:
    """Type into the model dropdown to filter it to one option, then take it with Enter."""
    box = page.locator("#model-key input")
    box.click()
    box.press("Control+a")
    box.press_sequentially(text, delay=20)
    option = page.get_by_role("option", name=re.compile(re.escape(text)))
    expect(option).to_have_count(1)
    option.click()
    expect(box).to_have_value(re.compile(re.escape(text)))


def test_imagenet_offline_says_why_in_the_page(page):
    """The test server cannot reach the ImageNet URL: choosing it must say so, not 'something went wrong'."""
    choose_model(page, "torchvision ImageNet")
    expect(page.get_by_text(re.compile(r"Could not download torchvision's ImageNet weights \(no network\?")).first
           ).to_be_visible(timeout=QUICK)
    expect(page.locator("#banner")).to_contain_text("Pick the flowers model, or start with --weights FILE.")
    assert "Something went wrong" not in page.content()


def test_untrained_banner_button_leads_to_retrain(page):
    choose_model(page, "untrained paper model")
    expect(page.locator("#banner")).to_contain_text("untrained", timeout=QUICK)
    open_tab(page, "About")
    page.get_by_role("button", name=re.compile(r"Train this untrained model")).click()
    expect(page.locator("#train-status")).to_be_visible(timeout=QUICK)


# ------------------------------------------------------------------ About
def test_about_tab_shows_parameter_count(page, shots):
    open_tab(page, "About")
    facts = page.locator("#about-facts")
    expect(facts).to_contain_text("60,965,224")
    expect(facts).to_contain_text("55x55x96")
    expect(facts).to_contain_text("Paper-fidelity report")      # the claims of python -m report (paper.json)
    expect(facts).to_contain_text("Overlapping pooling")
    save_shot(page, shots, "about")


def test_all_screenshots_saved(shots):
    names = {p.stem for p in shots.glob("*.png")}
    assert {"classify", "filters", "layers", "embeddings", "retrain", "about"} <= names, names
    assert all(p.stat().st_size > 10_000 for p in shots.glob("*.png"))
