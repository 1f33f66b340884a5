"""Identical pictures returned to two visitors at once: the second write must not truncate the file the first
response is still sending (app.gradio_files; a CI run saw 'Too much data for declared Content-Length')."""
from __future__ import annotations

import os

import numpy as np
from gradio import processing_utils
from PIL import Image

from app import gradio_files


def test_a_second_save_of_the_same_picture_does_not_touch_the_file_being_sent(tmp_path):
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (300, 300, 3), dtype=np.uint8))
    first = gradio_files.save_pil_to_cache(img, str(tmp_path), format="png")
    before = os.stat(first)
    with open(first, "rb") as reader:                          # a response streaming the file
        head = reader.read(100)
        second = gradio_files.save_pil_to_cache(img, str(tmp_path), format="png")
        rest = reader.read()
    after = os.stat(second)
    assert second == first                                     # the same name: the content's hash, as Gradio's
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    assert head + rest == processing_utils.encode_pil_to_bytes(img, "png")


def test_a_reader_keeps_its_bytes_while_the_file_is_replaced(tmp_path):
    img = Image.new("RGB", (64, 64), (200, 10, 10))
    path = gradio_files.save_pil_to_cache(img, str(tmp_path), format="png")
    type(tmp_path)(path).unlink()                              # gone, so the next save writes it again
    with open(gradio_files.save_pil_to_cache(img, str(tmp_path), format="png"), "rb") as reader:
        gradio_files.save_pil_to_cache(Image.new("RGB", (64, 64), (200, 10, 10)), str(tmp_path), format="png")
        assert reader.read() == processing_utils.encode_pil_to_bytes(img, "png")
    assert not [p for p in type(tmp_path)(path).parent.iterdir() if p.name.startswith(".tmp-")]   # no leftovers


def test_the_page_installs_it_for_every_image_output():
    from app.page import build_app
    demo = build_app()
    try:
        assert processing_utils.save_pil_to_cache is gradio_files.save_pil_to_cache
    finally:
        demo.compute.shutdown()
