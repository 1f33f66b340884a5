"""Pictures a handler returns, written to Gradio's cache atomically.

Gradio names a returned PIL image (or array) by the hash of its encoded bytes and writes it over that path in
place (`processing_utils.save_pil_to_cache`: `write_bytes`). When two events return the same picture - every
visitor opening Embeddings gets the same map, every visitor the same conv1 grid - the second write truncates
the file while the first response is still streaming it ("Too much data for declared Content-Length" in the
server log, an image that never loads in the browser). Here the bytes go to a temporary file beside it and
replace the path in one step: a response already streaming keeps reading the old file, which has the very
same bytes. `install()` is called once by app.page.build_app.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gradio import processing_utils


def save_pil_to_cache(img, cache_dir: str, name: str = "image", format: str = "webp") -> str:
    """Gradio's save_pil_to_cache with the same path and bytes, written atomically (see the module docstring)."""
    data = processing_utils.encode_pil_to_bytes(img, format)
    folder = Path(cache_dir) / processing_utils.hash_bytes(data)
    folder.mkdir(exist_ok=True, parents=True)
    path = (folder / f"{name}.{format}").resolve()
    if not path.is_file() or path.stat().st_size != len(data):       # the same hash: the same bytes already there
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return str(path)


def install() -> None:
    """Make Gradio's image outputs (Image, Gallery, AnnotatedImage all call it through the module) use it."""
    processing_utils.save_pil_to_cache = save_pil_to_cache
