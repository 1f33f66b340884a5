"""The image set the page uses, owned by the page: which one (alexnet.data.find_data's order), decoded
once, said in one line, and the full flower set's download when a visitor asks for it.

The Embeddings and Retrain tabs both show `row(page)`: the line ("Data: flowers pack: 500 of the 3,667
photos ...") and a button that downloads the full set (218 MB) with progress in the page. Offline, the
button's answer is one whole sentence naming the cause and the way out; the pack stays in use.
"""
from __future__ import annotations

import threading

import gradio as gr

from alexnet import data as D
from alexnet.errors import UserError
from alexnet.pack import FULL_SET
from app.i18n import current_lang, t, tr
from app.ui import friendly


class Datasets:
    """The data in use for this server: `--data`, else $ALEXNET_DATA, the full set, ../shared, the pack."""

    def __init__(self, data: str | None):
        self.data = data
        self._decoded: D.Decoded | None = None
        self._lock = threading.Lock()                # one decode at a time; a second visitor waits for it

    def source(self) -> D.Source:
        return D.find_data(self.data)

    def line(self, lang: str | None = None) -> str:
        """The data line in the visitor's language (a folder's name and counts, or the shipped pack)."""
        try:
            src = self.source()
        except UserError as e:
            return tr(lang, "data_line", what=str(e))
        if src.is_pack:
            pack = D.read_pack(src.path)
            what = tr(lang, "data_pack", n=len(pack), full=f"{FULL_SET:,}", per=len(pack) // max(len(pack.classes), 1),
                      mb=f"{D.FLOWERS_BYTES / 2**20:.0f}")
        else:
            paths, _, classes = D.list_images(src.path)
            what = tr(lang, "data_folder", name=src.path.name, n=f"{len(paths):,}", k=len(classes),
                      why=tr(lang, f"data_from_{src.origin}", var=D.ENV_VAR))
        return tr(lang, "data_line", what=what)

    def decoded(self, progress=None) -> D.Decoded:
        """The set in use, decoded once (a download finished meanwhile switches to the full set)."""
        src, lang = self.source(), current_lang()
        with self._lock:
            if self._decoded is None or self._decoded.root != str(src.path):
                report = None if progress is None else \
                    (lambda d, t: progress(0.4 * d / max(t, 1), desc=tr(lang, "data_decoding", done=d, total=t)))
                self._decoded = D.decode_folder(src.path, progress=report)
            return self._decoded

    def peek(self) -> D.Decoded | None:
        """The set in use if it is decoded already, without decoding it."""
        d = self._decoded
        return d if d is not None and d.root == str(self.source().path) else None

    def warm(self) -> None:
        """Decode in the background (the pack takes about a second), so the first neighbours are instant."""
        threading.Thread(target=self.decoded, daemon=True, name="decode-data").start()

    def download(self, progress=None) -> str:
        """The full flower set into the cache (once), with progress; the sentence that says what changed."""
        lang = current_lang()

        def report(stage: str, done: int, total: int | None) -> None:
            if progress is None:
                return
            if stage == "download":
                mb = f"{done / 1e6:.0f}" + (f"/{total / 1e6:.0f}" if total else "")
                progress(done / total if total else None, desc=tr(lang, "data_downloading", mb=mb))
            else:
                progress(done / max(total or 1, 1), desc=tr(lang, "data_preparing", done=done, total=total))
        folder = D.download_flowers(progress=False, report=report)
        in_use = self.source()
        if in_use.path != folder:
            return tr(lang, "data_ready_not_used", folder=folder.name, line=self.line(lang))
        return tr(lang, "data_in_use", line=self.line(lang))


def row(page) -> tuple[gr.Markdown, gr.Button]:
    """The data line and the download button, for a tab that works on the data set in use."""
    with gr.Row():
        line = gr.Markdown(page.datasets.line(), elem_classes=["data-line"])
        fetch = gr.Button(t("data_download"), size="sm", scale=0)

    @friendly
    def download(lang, progress=gr.Progress()):
        gr.Info(page.datasets.download(progress))
        return page.datasets.line(lang)

    fetch.click(download, page.lang, line, api_name=False, concurrency_limit=1, concurrency_id="download-flowers")
    # a download by another visitor shows here; the language is the browser's (the lang State may not be set yet)
    page.demo.load(lambda: page.datasets.line(current_lang()), None, line, api_name=False)
    return line, fetch
