"""English and 简体中文 (issue 23, item 5): one dictionary per language, the same keys in both, every key the
code asks for present, the browser's language chosen from its Accept-Language."""
from __future__ import annotations

import re
import string
from pathlib import Path

import pytest

from app.i18n import FOLDER, LOCALES, dictionary, lang_of, tr

ROOT = Path(__file__).resolve().parents[1]


def test_one_dictionary_file_per_language_with_the_same_keys():
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == sorted(LOCALES)
    en = dictionary("en")
    for lang in LOCALES:
        d = dictionary(lang)
        for part in ("static", "text"):
            missing, extra = set(en[part]) - set(d[part]), set(d[part]) - set(en[part])
            assert not missing and not extra, f"{lang} {part}: missing {sorted(missing)}, only here {sorted(extra)}"
            for k, v in d[part].items():
                assert v.strip(), f"{lang} {k} is empty"


def test_translations_use_the_same_placeholders_and_static_text_none():
    fields = lambda s: {f for _, f, _, _ in string.Formatter().parse(s) if f}   # noqa: E731
    en = dictionary("en")
    for lang in LOCALES:
        for k, v in dictionary(lang)["text"].items():
            assert fields(v) == fields(en["text"][k]), (lang, k)
        for k, v in dictionary(lang)["static"].items():
            assert "{" not in v, (lang, k, "the browser's i18n would read braces as placeholders")


def test_chinese_is_chinese_and_keeps_the_technical_terms():
    zh = dictionary("zh-CN")
    han = re.compile(r"[\u4e00-\u9fff]")
    for part in ("static", "text"):
        for k, v in zh[part].items():
            words = re.sub(r"\{[^}]*\}", "", v)                # placeholders are not words
            if len(words) > 20:                                  # short ones may be all terms ("pool1：55，3/2")
                assert han.search(v), f"zh-CN {k} has no Chinese"
    assert "conv1" in zh["text"]["tour_conv1_text"] and "Grad-CAM" in zh["text"]["tour_gradcam_title"]
    assert "(Layers)" in zh["static"]["tab_layers"]          # the English name beside the Chinese


def test_every_key_the_code_asks_for_exists():
    used = set()
    for f in (ROOT / "app").glob("*.py"):
        src = f.read_text()
        used |= set(re.findall(r'\bt\("([a-z0-9_]+)"\)', src))
        used |= {f"tab_{m}" for m in re.findall(r'\("([a-z]+)", tab_\1\)', src)}
    assert used and used <= set(dictionary("en")["static"]), sorted(used - set(dictionary("en")["static"]))
    # handlers' text: tr(lang, "key") / in_lang(lang, "key") with a literal key, and the families built from names
    said = set()
    for f in (ROOT / "app").glob("*.py"):
        said |= set(re.findall(r'\b(?:tr|in_lang)\([^,()]+, "([a-z0-9_]+)"', f.read_text()))
    from alexnet import data as D
    from alexnet.train import FINETUNE_DEPTHS, Phase
    said |= {f"phase_{p}" for p in Phase} | {f"data_from_{o}" for o in (D.FROM_FLAG, D.FROM_ENV, D.FROM_CACHE,
                                                                         D.FROM_SHARED, D.FROM_PACK)}
    assert len(said) > 100 and said <= set(dictionary("en")["text"]), sorted(said - set(dictionary("en")["text"]))
    static = set(dictionary("en")["static"])
    assert {f"retrain_depth_{v}" for v, _ in FINETUNE_DEPTHS} <= static
    for lang in LOCALES:                                     # the button's size is the download's real size
        assert f"({D.FLOWERS_BYTES / 2**20:.0f} MB)" in dictionary(lang)["static"]["data_download"]
        for v, _ in FINETUNE_DEPTHS:
            assert f"(--freeze {v})" in dictionary(lang)["static"][f"retrain_depth_{v}"]


def test_the_visitors_language_from_accept_language():
    assert lang_of("zh-CN,zh;q=0.9,en;q=0.8") == "zh-CN" and lang_of("zh") == "zh-CN"
    assert lang_of("en-US,en;q=0.9") == "en" and lang_of(None) == "en" and lang_of("fr-FR") == "en"
    assert lang_of("zh-TW") == "en" and lang_of("zh-TW,zh;q=0.9") == "zh-CN"   # traditional alone: not this one
    assert tr("zh-CN", "tour_scores_text", k=5, top="roses", p="87%").endswith("roses（87%）。")
    assert tr("xx", "tour_scores_title", k=5) == "fc8: 5 scores"
    with pytest.raises(KeyError):
        tr("en", "no_such_key")


def test_errors_follow_the_visitor_the_browser_first_then_the_switch():
    """Sentences written where no `lang` input reaches (errors) read the running event's request."""
    import contextvars

    import gradio as gr
    from gradio.context import LocalContext

    from app.i18n import current_lang, remember
    from app.ui import need_image

    def in_request(headers, session):
        LocalContext.request.set(gr.Request(headers=headers, session_hash=session))
        with pytest.raises(gr.Error) as e:
            need_image(None)
        return current_lang(), e.value.message

    ctx = contextvars.copy_context()                       # the request is set in a copy: this test's only
    lang, message = ctx.run(in_request, {"accept-language": "zh-CN,zh;q=0.9"}, "visitor-1")
    assert lang == "zh-CN" and message.startswith("请先上传一张图片")
    remember(gr.Request(session_hash="visitor-1"), "en")   # the visitor pressed English
    lang, message = contextvars.copy_context().run(in_request, {"accept-language": "zh-CN"}, "visitor-1")
    assert lang == "en" and message.startswith("Upload an image first")
    assert contextvars.copy_context().run(lambda: current_lang()) == "en"    # no request: English


def test_the_handlers_sentences_in_chinese_keep_their_numbers(tmp_path):
    """The Retrain status, the Filters summary, the data line and the About facts, as a zh-CN visitor reads them."""
    from alexnet import bvlc
    from alexnet.train import Phase, Progress
    from app.datasets import Datasets
    from app.tab_about import facts_markdown
    from app.tab_filters import summary
    from app.trainer import Trainer
    from viz.filters import filter_view

    tr_ = Trainer(registry=None)
    tr_.last = Progress(phase=Phase.TRAIN, epoch=2, epochs=3, step=40, steps=60, loss=0.5123, val_acc=0.8,
                        phase_seconds={"decode": 1.5, "model": 0.0, "features": 12.0, "train": 3.0})
    zh, en = tr_.status_line("zh-CN"), tr_.status_line("en")
    assert en == "epoch 2/3, step 40/60, loss 0.512, val acc 80.0%"
    assert "第 2/3 轮" in zh and "0.512" in zh and "80.0%" in zh and "epoch 2/3" not in zh
    assert tr_.time_split("zh-CN") == "解码 1.5 s, 特征 12 s, 训练 3.0 s" and tr_.time_split("en").startswith("decode 1.5 s")

    view = filter_view(bvlc.conv1()[0], groups=2)
    en, zh = summary(view, "en"), summary(view, "zh-CN")
    assert "colour-agnostic" in en and "colour-specific" in en and "与颜色无关" in zh and "颜色特异" in zh
    for g in view.groups:                                     # the same medians in both
        assert f"{g['median']:.2f}" in en and f"{g['median']:.2f}" in zh

    line = Datasets(None).line("zh-CN")                       # the shipped pack or a folder: counts in Chinese
    assert line.startswith("**数据：**") and re.search(r"\d", line)
    facts = facts_markdown("zh-CN")
    assert "| 说法 | 论文 | 本项目 |" in facts and "60,965,224" in facts and "参数" in facts
