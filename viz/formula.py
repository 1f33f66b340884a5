"""The output-size formula as a picture: a row of W input pixels (and P of padding each side), every
window of F pixels the kernel visits at stride S, and the pixels no window reaches.

    picture = windows(224, 11, 4, 0)        # the paper's 224: 54 windows, the last 1 pixel never read

(The same formula in words, in the visitor's language, is app.lesson_words.formula_words.)
"""
from __future__ import annotations

from PIL import Image, ImageDraw

from alexnet.shapes import out_side

WIDTH = 960                      # pixels of the drawing; one input pixel is at least 2 of them
PAD, INPUT, LEFT, WINDOW = (200, 200, 200), (90, 140, 220), (230, 70, 60), (20, 20, 20)


def windows(w: int, f: int, s: int, p: int, rows: int = 6) -> Image.Image:
    """The input row with padding (grey), the pixels some window reads (blue) and those none reads (red);
    below it the windows, drawn on `rows` staggered lines so neighbours' overlap shows."""
    o = out_side(w, f, s, p)
    n = w + 2 * p                                   # the padded side
    cell = max(2, WIDTH // n)
    strip, gap, line = 18, 6, 8
    img = Image.new("RGB", (n * cell + 2, strip + gap + rows * (line + 3) + 4), "white")
    d = ImageDraw.Draw(img)
    reached = (o["out"] - 1) * s + f                # padded pixels 0 .. reached-1 are read by some window
    for i in range(n):
        colour = PAD if (i < p or i >= p + w) else (INPUT if i < reached else LEFT)
        d.rectangle([1 + i * cell, 1, (i + 1) * cell, strip], fill=colour)
    for j in range(o["out"]):
        y = strip + gap + (j % rows) * (line + 3)
        x0 = 1 + j * s * cell
        d.rectangle([x0, y, x0 + f * cell - 1, y + line], outline=WINDOW)
    return img
