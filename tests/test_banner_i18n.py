"""The model banner and the untrained / partly-trained notices in the visitor's language (English or 简体中文):
the words from app/locales/<lang>.json, the English exactly as before, and the page writing the banner again
when it opens, when the model changes and when the visitor presses the language switch."""
from __future__ import annotations

import re

import pytest

from app import text
from app.i18n import dictionary
from app.page import build_app
from app.state import FLOWERS, UNTRAINED, Registry

HAN = re.compile(r"[\u4e00-\u9fff]")
FLOWER_NAMES = "daisy, dandelion, roses, sunflowers, tulips"
SLOW_BROWSER = 90_000      # ms: a busy 2-core machine


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return build_app(checkpoints_dir=str(tmp_path_factory.mktemp("banner") / "ck"), device="cpu")


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    return Registry(checkpoints_dir=tmp_path_factory.mktemp("banner-registry") / "ck", device="cpu")


def shipped_english(registry) -> str:
    """Today's English banner for the shipped model, written out by hand from its facts."""
    meta = registry.meta_of(FLOWERS)
    label = dict((k, lbl) for lbl, k in registry.choices())[FLOWERS]
    return (f"**Model:** {label} · device: `cpu`\n\n"
            f"Knows only {len(meta['classes'])} classes: {', '.join(meta['classes'])}. Whatever the photo shows, "
            f"the answer is one of these; for 1,000 ImageNet classes choose torchvision ImageNet (a 233 MB "
            f"download). Held-out accuracy {meta['metrics']['val_top1']:.1%}.")


def test_the_shipped_models_banner_in_english_is_as_before(registry):
    en = registry.banner(FLOWERS, "en")
    assert en == shipped_english(registry) == registry.banner(FLOWERS) == registry.banner(FLOWERS, None)
    assert "Knows only 5 classes" in en and FLOWER_NAMES in en and "Held-out accuracy" in en
    assert not HAN.search(en)


def test_the_shipped_models_banner_in_chinese_keeps_the_numbers_and_names(registry):
    zh = registry.banner(FLOWERS, "zh-CN")
    meta = registry.meta_of(FLOWERS)
    acc = f"{meta['metrics']['val_top1']:.1%}"
    assert HAN.search(zh) and "Knows only" not in zh and "Held-out" not in zh.replace("held-out", "")
    assert "只认识 5 个类别" in zh and FLOWER_NAMES in zh and acc in zh and acc in registry.banner(FLOWERS)
    assert "torchvision ImageNet" in zh and "233 MB" in zh and "`cpu`" in zh
    label = dict((k, lbl) for lbl, k in registry.choices())[FLOWERS]
    assert label in zh                                          # the model's name as the dropdown shows it


def test_the_untrained_banner_in_both_languages(registry):
    en, zh = registry.banner(UNTRAINED, "en"), registry.banner(UNTRAINED, "zh-CN")
    assert en == ("**Model:** untrained paper model (random weights) · device: `cpu`\n\n"
                  "**This model is untrained** (random weights): its top-5 and every explanation below are noise, "
                  "shown so you can see what the pipeline does. Load ImageNet weights or train it on the flowers in "
                  "the Retrain tab to get meaningful pictures.")
    assert en.endswith(text.UNTRAINED_NOTICE) and text.untrained_notice() == text.UNTRAINED_NOTICE
    assert zh.startswith("**模型：** untrained paper model (random weights)") and "未经训练" in zh
    assert zh.endswith(text.untrained_notice("zh-CN")) and "top-5" in zh and "ImageNet" in zh
    assert "untrained" not in text.untrained_notice("zh-CN").lower()


def test_the_partly_trained_notice_in_both_languages():
    meta = dict(classes=[f"c{i}" for i in range(1000)],
                load_report=dict(loaded=["conv1"], missing=["conv2", "fc8"], partial=True))
    en = text.banner("given: bvlc.npz", "cpu", meta)
    assert en == ("**Model:** given: bvlc.npz · device: `cpu`\n\nKnows the 1,000 ImageNet classes.\n\n"
                  "**This model is only partly trained**: the file gave conv1 and nothing for conv2, fc8, which keep "
                  "random weights. Its top-5 and every explanation are noise; the loaded layers' filters (Filters "
                  "tab) are real.")
    zh = text.banner("given: bvlc.npz", "cpu", meta, lang="zh-CN")
    assert HAN.search(zh) and "1,000 个 ImageNet" in zh and "conv1" in zh and "conv2, fc8" in zh
    assert "partly" not in zh
    none = dict(loaded=[], missing=["conv1"], partial=True)
    assert "the file gave no layer and nothing for conv1" in text.partial_notice(none)
    assert "no layer" not in text.partial_notice(none, "zh-CN")


def test_how_the_weights_began_in_both_languages():
    from alexnet.bvlc import BVLC_SOURCE
    bvlc = dict(source=BVLC_SOURCE, data="/data/flowers")
    assert text.start_label(bvlc) == "conv1 from BVLC ImageNet, the rest trained on flowers"
    assert text.start_label(dict(source=BVLC_SOURCE, data="/x")) == "conv1 from BVLC ImageNet, the rest trained on this data"
    assert text.start_label(dict(source="scratch")) == "trained fully from scratch"
    assert text.start_label(dict(source="/a/b/m.safetensors")) == "fine-tuned from m.safetensors"
    assert text.start_label({}) == "" == text.start_label({}, "zh-CN")
    zh = text.start_label(bvlc, "zh-CN")
    assert HAN.search(zh) and "conv1" in zh and "BVLC ImageNet" in zh and "flowers" in zh
    assert "m.safetensors" in text.start_label(dict(source="/a/b/m.safetensors"), "zh-CN")


def test_an_unknown_language_is_english(registry):
    for key in (FLOWERS, UNTRAINED):
        assert registry.banner(key, "fr-FR") == registry.banner(key, "en") == registry.banner(key, "")
    assert text.untrained_notice("xx") == text.UNTRAINED_NOTICE


def test_the_words_live_in_both_dictionaries():
    keys = [k for k in dictionary("en")["text"] if k.startswith(("banner_", "notice_"))]
    assert len(keys) >= 8 and all(k in dictionary("zh-CN")["text"] for k in keys)


def test_a_model_change_writes_the_banner_in_the_visitors_language(demo):
    banner, button = demo.page.on_model_change(UNTRAINED, "zh-CN")
    assert "未经训练" in banner and button.visible
    banner, button = demo.page.on_model_change(FLOWERS, "en")
    assert "Knows only 5 classes" in banner and not button.visible
    assert demo.page.banner(None, "zh-CN") == demo.page.registry.banner(demo.page.registry.default_key(), "zh-CN")


def test_the_page_writes_the_banner_again_on_open_on_switch_and_on_model_change(demo):
    """In the page's wiring: every event that writes the banner reads the model and the visitor's language
    (the `lang` state): the model change itself, and, chained after the page load and after each language button
    (which set `lang`), a refresh of the banner alone."""
    cfg = demo.get_config_file()
    comps = {c["id"]: c for c in cfg["components"]}
    banner = next(i for i, c in comps.items() if c["props"].get("elem_id") == "banner")
    model = next(i for i, c in comps.items() if c["props"].get("elem_id") == "model-key")
    lang = demo.page.lang._id
    deps = {d["id"]: d for d in cfg["dependencies"]}
    writers = [d for d in deps.values() if banner in d["outputs"]]
    assert writers and all(lang in d["inputs"] and model in d["inputs"] for d in writers)
    assert any([tuple(x) for x in d["targets"]] == [(model, "change")] for d in writers)
    after = [deps[d["trigger_after"]] for d in writers if d.get("trigger_after") is not None]
    sets_lang = [d for d in after if lang in d["outputs"]]
    sources = {comps.get(i, {}).get("props", {}).get("elem_id") or ev for d in sets_lang for i, ev in d["targets"]}
    assert {"load", "lang-en", "lang-zh-CN"} <= sources, sources


def test_the_browser_shows_the_banner_in_its_language_and_follows_the_switch(app_server):
    pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
    from conftest import chromium_path
    if chromium_path() is None:
        pytest.skip("no Chromium on PATH")
    from playwright.sync_api import expect, sync_playwright
    args = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=args, headless=True)
        try:
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
            pg = ctx.new_page()
            pg.set_default_timeout(SLOW_BROWSER)
            pg.goto(app_server["url"], wait_until="domcontentloaded")
            banner = pg.locator("#banner")
            expect(banner).to_contain_text("只认识 5 个类别")              # written again once the page knows zh-CN
            expect(banner).to_contain_text(FLOWER_NAMES)
            pg.locator("#lang-en").click()
            expect(banner).to_contain_text("Knows only 5 classes")
            pg.locator("#lang-zh-CN").click()
            expect(banner).to_contain_text("只认识 5 个类别")
            expect(banner).not_to_contain_text("Knows only")
        finally:
            browser.close()
