"""The network drawn to scale from `alexnet.shapes`: one block per layer, its size following its tensor.

    rows = alexnet.shapes.spec_table(meta["spec"], meta["input_size"])
    d = draw(rows, acts=acts, photo=img, classes=meta["classes"])   # -> Diagram(image, blocks)
    layer = block_at(d.blocks, x, y)                                 # a click on the picture -> "conv3"

Every number on the drawing comes from the shape table (the one source of layer shapes), so a
torchvision model, a 224 input or a half-width net is drawn as it is. A conv/pool block is a box:
its front face is H x W, its depth the channel count; an fc block is a bar as tall as its width.
Sizes are on log scales, so 227 and 6 pixels, 3 and 4,096 channels are all readable on one line.
Where the architecture is grouped (the paper's two GPUs), conv1-pool5 are drawn as two towers of
half the channels each; the towers exchange their maps only at conv3 and fc6, drawn as crossing lines.
With an activation dict, each face shows that tower's mean map (the photo for the input), and
fc8 is labelled with the model's classes and this photo's scores.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from alexnet.model import FC_LAYERS

HEIGHT = 470                   # pixels of the drawing; the width follows the blocks (about 1,450 for AlexNet)
FACE = (34, 150)               # front-face side for a 1-pixel and for the largest map (log scale between)
DEPTH = (4, 44)                # box depth for 1 channel and for 384 (the paper's widest), so nets compare
BAR = (26, 330)                # fc bar height for 1 unit and for 4,096
GAP = 26                       # between blocks
TOWER_GAP = 34                 # between the two towers
FILL, EDGE, SIDE, TOP = (232, 238, 250), (40, 60, 110), (190, 202, 232), (210, 220, 244)
CROSS = (220, 110, 40)         # where the towers talk
TEXT, DIM = (20, 20, 20), (90, 90, 90)
CMAP = colormaps["viridis"]


@dataclass
class Block:
    """Where one layer (or one tower of it) sits on the picture: the clickable box and what it holds."""
    layer: str                 # "input", "conv1", ..., "fc8"
    box: tuple[int, int, int, int]   # (x0, y0, x1, y1) in the picture's pixels, depth included
    face: tuple[int, int, int, int]  # the front face (where the thumbnail goes)
    shape: tuple[int, ...]           # the whole layer's (C, H, W) or (C,)
    tower: int | None = None         # 0 or 1 where drawn as two towers


@dataclass
class Diagram:
    image: Image.Image
    blocks: list[Block]


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)       # Pillow >= 10.1: a scalable font, no file needed
    except TypeError:                                  # older Pillow: the fixed bitmap font
        return ImageFont.load_default()


def _log_scale(v: float, lo: float, hi: float, vmax: float) -> int:
    """lo for v = 1, hi for v = vmax, logarithmic between (and never below lo)."""
    return int(round(lo + (hi - lo) * math.log(max(v, 1)) / math.log(max(vmax, 2))))


def towers(rows: list[dict]) -> bool:
    """True where the architecture is split in two groups (the paper's two GPUs): some conv has groups 2."""
    return any((r["groups"] or 1) > 1 for r in rows)


def _thumb(t: torch.Tensor | None, side: int, photo: Image.Image | None = None) -> Image.Image | None:
    """A (C, H, W) activation as its channel mean in viridis, or the photo, at side x side pixels."""
    if photo is not None:
        return photo.convert("RGB").resize((side, side), Image.BILINEAR)
    if t is None:
        return None
    m = t.float().mean(0).numpy()                      # (C, H, W) -> (H, W)
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    rgb = (CMAP(m)[..., :3] * 255).astype(np.uint8)    # (H, W, 3)
    return Image.fromarray(rgb).resize((side, side), Image.NEAREST)   # nearest: a 6x6 map stays 36 squares


def _box(draw: ImageDraw.ImageDraw, x: int, y: int, side: int, depth: int) -> tuple[int, int, int, int]:
    """A box seen from the upper right: front face at (x, y), `side` square, `depth` pixels deep. -> the face."""
    d = depth // 2                                     # the depth recedes up and to the right at 45 degrees... halved
    draw.polygon([(x, y), (x + d, y - d), (x + side + d, y - d), (x + side, y)], fill=TOP, outline=EDGE)
    draw.polygon([(x + side, y), (x + side + d, y - d), (x + side + d, y + side - d), (x + side, y + side)],
                 fill=SIDE, outline=EDGE)
    draw.rectangle((x, y, x + side, y + side), fill=FILL, outline=EDGE)
    return (x, y, x + side, y + side)


def _shape_text(shape: tuple[int, ...], split: bool) -> str:
    if len(shape) == 1:
        return f"{shape[0]:,}"
    c, h, w = shape
    return f"{c // 2}x{h}x{w} x2" if split else f"{c}x{h}x{w}"


def draw(rows: list[dict], acts: dict | None = None, photo: Image.Image | None = None,
         classes: list[str] | None = None, top: int = 5) -> Diagram:
    """The picture and its clickable blocks for a shape table (alexnet.shapes.spec_table).

    `acts` ({layer: (1, ...) tensor}, as app.compute.forward gives) fills the faces and fc8's scores;
    `photo` fills the input face; `classes` labels fc8 (its `top` highest scores when acts are given).
    """
    split = towers(rows)
    size = rows[0]["in_shape"][1]
    spatial = [dict(layer="input", shape=tuple(rows[0]["in_shape"]))] + \
              [dict(layer=r["layer"], shape=tuple(r["out_shape"])) for r in rows if r["layer"] not in FC_LAYERS]
    dense = [dict(layer=r["layer"], shape=tuple(r["out_shape"])) for r in rows if r["layer"] in FC_LAYERS]
    max_c = max(s["shape"][0] for s in spatial)
    max_units = max(d["shape"][0] for d in dense)
    font, small, big = _font(15), _font(12), _font(17)
    # widths first: every block's side and depth, then one pass left to right
    for s in spatial:
        s["side"] = _log_scale(s["shape"][1], *FACE, vmax=size)
        two = split and s["layer"] != "input"
        s["split"] = two
        s["depth"] = _log_scale(s["shape"][0] // (2 if two else 1), *DEPTH, vmax=max(max_c, 384))
        if two:                                        # two towers share the height one block would have
            s["side"] = max(FACE[0], int(s["side"] * 0.72))
    for d in dense:
        d["h"] = _log_scale(d["shape"][0], *BAR, vmax=max(max_units, 4096))
    label_w = 190 if classes else 60                  # room for fc8's class names
    width = sum(s["side"] + s["depth"] // 2 + GAP for s in spatial) + len(dense) * (24 + GAP) + label_w + 20
    img = Image.new("RGB", (width, HEIGHT), "white")
    g = ImageDraw.Draw(img)
    mid = HEIGHT // 2 + 10
    blocks: list[Block] = []
    x = 14
    prev_faces: list[tuple[int, int, int, int]] = []
    for s in spatial:
        layer, shape, side, depth = s["layer"], s["shape"], s["side"], s["depth"]
        ys = [mid - TOWER_GAP // 2 - side, mid + TOWER_GAP // 2] if s["split"] else [mid - side // 2]
        t = acts.get(layer) if acts and layer != "input" else None
        faces = []
        for k, y in enumerate(ys):
            face = _box(g, x, y, side, depth)
            part = None
            if t is not None:
                a = t[0] if t.dim() == 4 else t                                      # (1, C, H, W) -> (C, H, W)
                half = a.shape[0] // len(ys)
                part = a[k * half:(k + 1) * half]                                    # this tower's channels
            thumb = _thumb(part, side - 1, photo if layer == "input" else None)
            if thumb is not None:
                img.paste(thumb, (face[0] + 1, face[1] + 1))
            faces.append(face)
            blocks.append(Block(layer, (x, y - depth // 2, x + side + depth // 2, y + side), face, shape,
                                k if s["split"] else None))
        _connect(g, prev_faces, faces, crossing=_crosses(layer, rows))
        top_y = min(f[1] for f in faces) - depth // 2
        g.text((x + side // 2, top_y - 6), layer, fill=TEXT, font=big, anchor="md")
        g.text((x + side // 2, max(f[3] for f in faces) + 8), _shape_text(shape, s["split"]), fill=DIM,
               font=small, anchor="ma")
        prev_faces = faces
        x += side + depth // 2 + GAP
    for d in dense:
        layer, h = d["layer"], d["h"]
        face = (x, mid - h // 2, x + 24, mid + h // 2)
        g.rectangle(face, fill=FILL, outline=EDGE)
        t = acts.get(layer) if acts else None
        if t is not None:
            _bar_fill(img, face, t.flatten().float())
        _connect(g, prev_faces, [face], crossing=layer == "fc6" and split)
        g.text((x + 12, face[1] - 6), layer, fill=TEXT, font=big, anchor="md")
        g.text((x + 12, face[3] + 8), _shape_text(d["shape"], False), fill=DIM, font=small, anchor="ma")
        blocks.append(Block(layer, face, face, d["shape"]))
        prev_faces = [face]
        x += 24 + GAP
    if classes:
        _class_labels(g, x - GAP + 8, mid, classes, acts.get("fc8") if acts else None, top, font)
    g.text((14, 10), f"AlexNet ({'two towers' if split else 'one tower'}), input {size}x{size}: sides "
           + " -> ".join(dict.fromkeys(str(s["shape"][1]) for s in spatial)) + ". Click a block to open its layer.",
           fill=TEXT, font=font)
    return Diagram(img, blocks)


def _crosses(layer: str, rows: list[dict]) -> bool:
    """Whether `layer` reads both towers: an ungrouped conv after grouped ones (the paper's conv3)."""
    if not towers(rows):
        return False
    row = next((r for r in rows if r["layer"] == layer), None)
    return bool(row and layer.startswith("conv") and layer != "conv1" and (row["groups"] or 1) == 1)


def _connect(g, before: list, after: list, crossing: bool) -> None:
    """Lines from each face before to each face after: straight within a tower, crossed where towers talk."""
    for i, a in enumerate(before):
        for j, b in enumerate(after):
            same = len(before) == len(after) and i == j
            if not (same or len(before) != len(after) or crossing):
                continue
            colour = CROSS if crossing and not same else EDGE
            g.line([(a[2], (a[1] + a[3]) // 2), (b[0], (b[1] + b[3]) // 2)], fill=colour, width=2 if crossing else 1)


def _bar_fill(img: Image.Image, face, v: torch.Tensor) -> None:
    """An fc layer's units as a column of stripes, brightest for the strongest (viridis, max-normalised)."""
    x0, y0, x1, y1 = face
    h = y1 - y0 - 1
    bins = torch.tensor_split(v, min(h, v.numel()))              # (units,) -> h groups, their max each
    m = torch.stack([b.max() for b in bins]).numpy()
    lo, hi = float(m.min()), float(m.max())
    m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
    col = (CMAP(m)[:, :3] * 255).astype(np.uint8)                # (h', 3)
    strip = Image.fromarray(col[:, None, :].repeat(x1 - x0 - 1, 1)).resize((x1 - x0 - 1, h), Image.NEAREST)
    img.paste(strip, (x0 + 1, y0 + 1))


def fc8_lines(classes: list[str], logits: torch.Tensor | None = None, top: int = 5) -> list[str]:
    """fc8's labels: with this photo's logits its `top` classes by probability ("roses  87%"), highest first;
    without, the first `top` class names (and how many there are when more)."""
    if logits is not None:
        p = torch.softmax(logits.flatten().float(), 0)
        vals, idx = p.topk(min(top, len(classes)))
        return [f"{classes[i]}  {v:.0%}" for v, i in zip(vals.tolist(), idx.tolist())]
    return classes[:top] + ([f"... {len(classes):,} classes"] if len(classes) > top else [])


def _class_labels(g, x: int, mid: int, classes: list[str], logits, top: int, font) -> None:
    """fc8's names beside its bar."""
    lines = fc8_lines(classes, logits, top)
    y = mid - len(lines) * 11
    for line in lines:
        g.text((x, y), line[:26], fill=TEXT, font=font)
        y += 22


def block_at(blocks: list[Block], x: float, y: float) -> str | None:
    """The layer whose block contains the picture pixel (x, y), or the nearest block's within 30 pixels."""
    for b in blocks:
        x0, y0, x1, y1 = b.box
        if x0 <= x <= x1 and y0 <= y <= y1:
            return b.layer
    near = [(max(b.box[0] - x, 0, x - b.box[2]) + max(b.box[1] - y, 0, y - b.box[3]), b.layer) for b in blocks]
    dist, layer = min(near)
    return layer if dist <= 30 else None
