"""The classroom walkthrough as a lesson pack: a Markdown page per layer and its PNGs, zipped."""
from __future__ import annotations

import io
import zipfile
from pathlib import Path

from PIL import Image

from alexnet.shapes import conv1_note, to_markdown


def layer_text(row: dict) -> str:
    """One step of the walkthrough in words: shape, formula, parameters, receptive field."""
    shape = "x".join(map(str, row["out_shape"]))
    lines = [f"### {row['layer']}: {'x'.join(map(str, row['in_shape']))} -> {shape}", f"Operations: {row['ops']}"]
    if row["formula"]:
        lines.append(f"Output side: `{row['formula']}`" + ("" if row["exact"] else " (not exact: the last pixels are dropped)"))
    lines.append(f"Parameters: {row['weights']:,} weights + {row['biases']:,} biases; "
                 f"MACs: {row['macs']:,}; neurons: {row['neurons']:,}")
    if row["jump"]:
        lines.append(f"Each unit sees a {row['receptive_field']}x{row['receptive_field']} input window; "
                     f"neighbouring units are {row['jump']} pixels apart.")
    return "\n\n".join(lines)


def lesson_pack(rows: list[dict], arch: str, size: int, pictures: dict[str, Image.Image], out: Path,
                input_image: Image.Image | None = None) -> Path:
    """Write `out` (.zip): lesson.md with the table and one section per layer, plus <layer>.png maps."""
    md = [f"# AlexNet ({arch}) at {size}x{size}: a walk through the layers", "", conv1_note(arch, size), "",
          to_markdown(rows), ""]
    if input_image is not None:
        md += ["## The input", "", "![input](input.png)", ""]
    for r in rows:
        md += [layer_text(r), ""]
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
