"""The classroom walkthrough as a lesson pack: a Markdown page per layer and its PNGs, zipped."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

from typing import Callable

from alexnet.shapes import conv1_note, to_markdown


def lesson_pack(rows: list[dict], arch: str, size: int, pictures: dict[str, Image.Image], out: Path,
                describe: Callable[[dict], str], input_image: Image.Image | None = None) -> Path:
    """Write `out` (.zip): lesson.md with the table and one section per layer (`describe(row)`: the layer in
    words, in the reader's language), plus <layer>.png maps."""
    md = [f"# AlexNet ({arch}) at {size}x{size}: a walk through the layers", "", conv1_note(arch, size), "",
          to_markdown(rows), ""]
    if input_image is not None:
        md += ["## The input", "", "![input](input.png)", ""]
    for r in rows:
        md += [describe(r), ""]
        if r["layer"] in pictures:
            md += [f"![{r['layer']}]({r['layer']}.png)", ""]
    out = Path(out)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("lesson.md", "\n".join(md))
        for name, img in [("input", input_image)] + list(pictures.items()):
            if img is None:
                continue
            buf = io.BytesIO()
            img.save(buf, "PNG")
            z.writestr(f"{name}.png", buf.getvalue())
    return out
