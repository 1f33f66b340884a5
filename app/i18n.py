"""English and 简体中文: one dictionary file per language (app/locales/<lang>.json), two ways in.

- `t("tab_layers")`: static text (a label, a button, a heading). Gradio's gr.I18n sends every language's
  "static" table to the browser, which shows the visitor's language (Accept-Language, or the switch).
- `tr(lang, "status_epoch", epoch=2, epochs=3)`: text a handler writes with numbers in it. The page keeps the visitor's
  language in `Page.lang` (set from the browser's language when the page opens, and by the switch), and the
  handler formats the "text" table of that language (English where a key is missing).

Layer and method names stay in English beside the Chinese (conv1, Grad-CAM, ReLU): they are what the
paper, the code and every course use. tests/test_i18n.py fails when a key exists in one language only.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import gradio as gr

LOCALES = {"en": "English", "zh-CN": "简体中文"}
DEFAULT = "en"
FOLDER = Path(__file__).resolve().with_name("locales")


@lru_cache(maxsize=None)
def dictionary(lang: str) -> dict[str, dict[str, str]]:
    """{"static": {key: text}, "text": {key: format string}} of one language."""
    return json.loads((FOLDER / f"{lang}.json").read_text(encoding="utf-8"))


I18N = gr.I18n(**{lang: dictionary(lang)["static"] for lang in LOCALES})   # passed to launch()


def t(key: str):
    """Static text, translated in the browser. Unknown keys fail here, at build time, not on a visitor's screen."""
    if key not in dictionary(DEFAULT)["static"]:
        raise KeyError(f"no static text {key!r} in app/locales/{DEFAULT}.json")
    return I18N(key)


def tr(lang: str | None, key: str, **values) -> str:
    """A handler's text in `lang` (English if the language or the key is missing), formatted with `values`."""
    table = dictionary(lang if lang in LOCALES else DEFAULT)["text"]
    return (table.get(key) or dictionary(DEFAULT)["text"][key]).format(**values)


# session -> the language its visitor chose (the switch) or whose browser asked for it: for sentences written
# where no `lang` input reaches, such as errors (app.ui.friendly). Bounded: the oldest sessions are forgotten.
_SESSIONS: dict[str, str] = {}
MAX_SESSIONS = 10_000


def remember(request, lang: str) -> str:
    """Note `lang` as this visitor's language (for errors); returns it."""
    h = getattr(request, "session_hash", None)
    if h:
        _SESSIONS.pop(h, None)
        _SESSIONS[h] = lang
        while len(_SESSIONS) > MAX_SESSIONS:
            _SESSIONS.pop(next(iter(_SESSIONS)))
    return lang


def current_lang() -> str:
    """The language of the visitor whose event is running (Gradio's request context), else English."""
    from gradio.context import LocalContext
    request = LocalContext.request.get(None)
    if request is None:
        return DEFAULT
    h = getattr(request, "session_hash", None)
    if h in _SESSIONS:
        return _SESSIONS[h]
    headers = getattr(request, "headers", None) or {}
    return lang_of(headers.get("accept-language"))


def lang_of(accept_language: str | None) -> str:
    """The visitor's language from an Accept-Language header: 简体中文 for any zh (bar zh-TW/zh-HK), else English."""
    for part in (accept_language or "").split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh") and not tag.startswith(("zh-tw", "zh-hk", "zh-hant")):
            return "zh-CN"
        if tag.startswith("en"):
            return "en"
    return DEFAULT


# The visible switch: Gradio's own language setting (footer -> Settings) changes the browser's locale through the
# front end's exported changeLocale; the same module is imported again by its URL (a module is one instance per
# URL), so the whole page follows at once. Where that fails the Settings panel is opened instead.
SWITCH_JS = """(lang) => {
  const url = performance.getEntriesByType('resource').map(e => e.name).find(n => /\\/core-[^/]*\\.js$/.test(n));
  const open = () => { const b = [...document.querySelectorAll('footer button, footer a')].pop(); if (b) b.click(); };
  if (url) { import(url).then(m => m.changeLocale ? m.changeLocale(lang) : open()).catch(open); } else { open(); }
  return lang;
}"""


def switch() -> dict[str, gr.Button]:
    """The visible switch: one small button per language. Wire it with `wire_switch` once the tabs exist."""
    with gr.Row(elem_id="lang-switch"):
        return {lang: gr.Button(name, size="sm", scale=0, min_width=90, elem_id=f"lang-{lang}")
                for lang, name in LOCALES.items()}


def wire_switch(buttons: dict[str, gr.Button], page_lang: gr.State, tabs: dict, also: tuple | None = None) -> None:
    """Each button: the browser's locale (SWITCH_JS), the handlers' language (`page_lang`), and the tab titles,
    sent again because Gradio re-translates only the selected tab's title when the locale changes.
    `also=(fn, inputs, outputs)`: text a handler wrote (the model banner), written again once `page_lang` holds
    the new language (`inputs` should include `page_lang`)."""
    ids = list(tabs)

    def chosen(lang, request):
        remember(request, lang)
        return [lang] + [gr.Tab(label=t(f"tab_{i}")) for i in ids]

    def choose(lang):
        def fn(request: gr.Request):
            return chosen(lang, request)
        return fn

    for lang, b in buttons.items():
        event = b.click(choose(lang), None, [page_lang] + [tabs[i] for i in ids], api_name=False,
                        js=f"() => {{ ({SWITCH_JS})('{lang}'); return []; }}")
        if also is not None:
            fn, inputs, outputs = also
            event.then(fn, inputs, outputs, api_name=False, show_progress="hidden")
