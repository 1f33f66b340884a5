"""What every tab shares: the one place user errors become messages, and the upload component."""
from __future__ import annotations

import functools
import inspect
import logging
from concurrent.futures import CancelledError

import gradio as gr

from alexnet.errors import UserError
from app.i18n import current_lang, tr
from app.lanes import Busy, ShuttingDown

log = logging.getLogger("alexnet-explainer")
USER_ERRORS = (UserError,)   # the project's own exceptions for what the visitor can fix (alexnet.errors)


def friendly(fn):
    """Turn what the visitor did wrong into a gr.Error with its sentence; log the rest, show no traceback."""
    def translate(e: Exception) -> gr.Error:
        # print_exception=False: Gradio would print a traceback for every gr.Error; a visitor's mistake is
        # not the server's, and an unexpected error is logged here once, with its traceback
        if isinstance(e, gr.Error):
            e.print_exception = False
            return e
        if isinstance(e, Busy):
            return gr.Error(tr(current_lang(), "err_busy", waiting=e.waiting), print_exception=False)
        if isinstance(e, USER_ERRORS):
            return gr.Error(str(e), print_exception=False)
        if isinstance(e, (ShuttingDown, CancelledError)):      # the server is stopping: expected
            log.info("%s stopped: the server is shutting down", fn.__name__)
            return gr.Error(tr(current_lang(), "err_shutting_down"), print_exception=False)
        log.exception("unexpected error in %s", fn.__name__)
        return gr.Error(tr(current_lang(), "err_server"), print_exception=False)

    if inspect.isgeneratorfunction(fn):
        @functools.wraps(fn)
        def gen(*a, **k):
            try:
                yield from fn(*a, **k)
            except Exception as e:
                raise translate(e) from None
        return gen

    @functools.wraps(fn)
    def wrapper(*a, **k):
        try:
            return fn(*a, **k)
        except Exception as e:
            raise translate(e) from None
    return wrapper


def need_image(path):
    if not path:
        raise gr.Error(tr(current_lang(), "err_need_image"))
    return path


class UploadImage(gr.Image):
    """gr.Image that hands us the uploaded file's path without opening it.

    Gradio's own preprocessing opens every upload with PIL first, so a broken file
    would fail there with a generic error; our `alexnet.images.open_image` validates
    it instead and says what is wrong.
    """
    is_template = True   # the browser still draws the standard Image component

    def preprocess(self, payload):
        if payload is None:
            return None
        if getattr(payload, "path", None):
            return str(payload.path)
        try:
            return super().preprocess(payload)
        except Exception as e:
            raise gr.Error(tr(current_lang(), "err_unreadable", kind=type(e).__name__)) from None


def photo_api(page, fn, inputs: list, outputs: list, api_name: str) -> None:
    """A named API endpoint for a tab whose button works on the visitor's upload (page.image, a State the API
    cannot fill): the same `fn`, its photo an uploaded file instead (gradio_client's handle_file). Wired to a
    hidden button, so the page's own event stays the one that reads page.image."""
    photo = gr.Image(type="filepath", visible=False)
    hidden = gr.Button(visible=False)
    rest = [c for c in inputs if c is not page.image]
    hidden.click(fn, [photo, *rest], outputs, api_name=api_name, concurrency_limit=None)
