"""Small drawing helpers shared by every view: heatmap overlays, bar charts, figure -> image, image -> small PNG file.

matplotlib runs headless (Agg) and figures are built with the object API, never pyplot's
global state, so concurrent requests in the app cannot draw into each other's axes.
"""
from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
from matplotlib import colormaps  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

from alexnet.weights import atomic_write_bytes  # noqa: E402


def new_figure(width: float = 6.0, height: float = 4.0, dpi: int = 100) -> Figure:
    """A figure not registered with pyplot: garbage-collected, thread-safe to draw."""
    return Figure(figsize=(width, height), dpi=dpi, layout="constrained")


def figure_to_image(fig: Figure) -> Image.Image:
    """Render a figure to an RGB PIL image."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def save_png(image: Image.Image, path, colours: int = 256) -> None:
    """Write an image as a small palette PNG, atomically: plots lose nothing, photo thumbnails a little."""
    small = image.convert("RGB").quantize(colours)
    atomic_write_bytes(path, lambda tmp: small.save(tmp, format="PNG", optimize=True))


def normalize_map(m: np.ndarray, vmax: float | None = None) -> np.ndarray:
    """Scale any heatmap to 0-1 (a constant map becomes all zeros, not NaN); with `vmax`, divide
    by it instead, so several maps share one scale."""
    m = np.nan_to_num(np.asarray(m, dtype=np.float64))
    if vmax is not None:
        return np.clip(m / vmax, 0.0, 1.0) if vmax > 0 else np.zeros_like(m)
    lo, hi = m.min(), m.max()
    return np.zeros_like(m) if hi - lo < 1e-12 else (m - lo) / (hi - lo)


def colorize(m: np.ndarray, cmap: str = "jet", vmax: float | None = None) -> np.ndarray:
    """(H, W) map -> (H, W, 3) uint8 through a matplotlib colour map."""
    return (colormaps[cmap](normalize_map(m, vmax))[..., :3] * 255).astype(np.uint8)


def overlay(image: np.ndarray | Image.Image, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet",
            vmax: float | None = None) -> Image.Image:
    """Blend a heatmap (any size) over an (H, W, 3) image; the map is resized to the image.
    `vmax`: the value drawn at full colour (default: the map's own range, 0-1 per map)."""
    img = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image, dtype=np.uint8)
    h, w = img.shape[:2]
    hm = normalize_map(heatmap, vmax)
    if hm.shape != (h, w):
        hm = np.asarray(Image.fromarray((hm * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)) / 255.0
    col = colorize(hm, cmap, vmax=1.0 if vmax is not None else None).astype(np.float64)
    out = (1 - alpha) * img.astype(np.float64) + alpha * col
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))


def overlay_row(image: Image.Image, maps: dict[str, np.ndarray], title: str = "") -> Image.Image:
    """Several heatmaps over one image in a row, on ONE colour scale (the largest value of all
    maps is full colour), each titled with its name and its own resolution, e.g. Grad-CAM at
    conv1..conv5: coarse-to-fine evidence that can be compared in strength, not only in shape."""
    vmax = max((float(np.max(m)) for m in maps.values()), default=0.0)
    fig = new_figure(2.4 * max(1, len(maps)), 2.9)
    for i, (name, m) in enumerate(maps.items()):
        ax = fig.add_subplot(1, len(maps), i + 1)
        ax.imshow(np.asarray(overlay(image, m, vmax=vmax)))
        ax.set_title(f"{name} ({m.shape[0]}x{m.shape[1]})", fontsize=10)
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return figure_to_image(fig)


def barh(labels: list[str], values, title: str = "", xlabel: str = "", width: float = 6.0, height: float | None = None) -> Figure:
    """Horizontal bars, first label on top (top-5 classes, fc activations, per-class accuracy)."""
    fig = new_figure(width, height or 0.45 * len(labels) + 1.0)
    ax = fig.add_subplot()
    y = np.arange(len(labels))[::-1]
    ax.barh(y, values, color="#3b6fb6")
    ax.set_yticks(y, labels)
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    return fig


def image_grid(tiles: np.ndarray, cols: int, pad: int = 1, pad_value: int = 255) -> np.ndarray:
    """(N, h, w, 3) uint8 tiles -> one (rows*(h+pad), cols*(w+pad), 3) mosaic."""
    n, h, w = tiles.shape[:3]
    rows = (n + cols - 1) // cols
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), pad_value, dtype=np.uint8)
    for i in range(n):
        r, c = divmod(i, cols)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = tiles[i]
    return out


def training_curves(points: list[dict], epochs: list[dict] | None = None) -> Image.Image:
    """Live curves: per-report training loss/accuracy over steps, and per-epoch validation accuracy."""
    fig = new_figure(8.0, 3.2)
    ax_l, ax_a = fig.subplots(1, 2)
    if points:
        steps = [p["step"] for p in points]
        mark = "o-" if len(points) < 20 else "-"   # a one-step run is still a visible point
        ax_l.plot(steps, [p["loss"] for p in points], mark, color="#c0392b", label="train loss")
        ax_a.plot(steps, [p["acc"] for p in points], mark, color="#2980b9", label="train accuracy")
    if epochs:
        ax_a.plot([e["step"] for e in epochs], [e["val_acc"] for e in epochs], "o-", color="#27ae60",
                  label="val accuracy")
    ax_l.set_xlabel("step")
    ax_l.set_title("loss")
    ax_a.set_xlabel("step")
    ax_a.set_ylim(0, 1)
    ax_a.set_title("accuracy")
    for ax in (ax_l, ax_a):
        if ax.lines:
            ax.legend(loc="best", fontsize=8)
    return figure_to_image(fig)


def confusion(matrix, classes: list[str], title: str = "confusion matrix (rows: true, columns: predicted)") -> Image.Image:
    """Counts in each cell; the diagonal is what the model got right."""
    m = np.asarray(matrix)
    n = len(classes)
    fig = new_figure(1.0 + 0.7 * n + 1.5, 1.0 + 0.6 * n + 1.0)
    ax = fig.add_subplot()
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black", fontsize=9)
    ax.set_title(title, fontsize=10)
    return figure_to_image(fig)
