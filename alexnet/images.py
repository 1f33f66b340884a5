"""From whatever a user uploads to the tensor the network expects: one path for UI, API, data and tests.

Validation happens before decoding (size on disk, format, pixel count from the header),
so a decompression bomb or a text file named .jpg costs nothing and gets a sentence back.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from alexnet.errors import UserError

MAX_BYTES = 20 * 1024 * 1024          # uploads larger than this are refused before reading
MAX_PIXELS = 40_000_000               # ~6300x6300; Pillow's bomb guard is set to match
MIN_SIDE = 16                         # below this there is nothing for an 11x11 stride-4 filter to see
FORMATS = ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO")
PREPARE_SIZE = 256                    # the paper: shorter side to 256, centre 256x256 crop

Image.MAX_IMAGE_PIXELS = MAX_PIXELS
ImageFile.LOAD_TRUNCATED_IMAGES = False


# What Pillow says when a PNG's text chunks exceed its limits (MAX_TEXT_CHUNK, MAX_TEXT_MEMORY).
_METADATA_LIMITS = ("MAX_TEXT_CHUNK", "Too much memory used in text chunks")
_ROWS = 256                           # rows per block when scaling 16-bit / 32-bit / float images


class ImageError(UserError):
    """An upload that cannot be used; the message is meant for the person who sent it."""


def _open(source) -> tuple[Image.Image, str]:
    """A lazily-opened PIL image (header read only) and a name for messages."""
    if isinstance(source, Image.Image):
        return source, "image"
    if isinstance(source, np.ndarray):
        if source.ndim not in (2, 3) or source.size == 0:
            raise ImageError(f"an array of shape {source.shape} is not an image")
        arr = source if source.dtype == np.uint8 else np.clip(source, 0, 255).astype(np.uint8)
        return Image.fromarray(arr), "array"
    if isinstance(source, (bytes, bytearray)):
        data, name = bytes(source), "upload"
    else:
        path = Path(os.fspath(source))
        name = path.name
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        if path.stat().st_size > MAX_BYTES:
            raise ImageError(f"{name} is {path.stat().st_size / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
        data = path.read_bytes()
    if len(data) == 0:
        raise ImageError(f"{name} is empty (0 bytes)")
    if len(data) > MAX_BYTES:
        raise ImageError(f"{name} is {len(data) / 2**20:.1f} MB; the limit is {MAX_BYTES // 2**20} MB")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)      # "Corrupt EXIF data": the pixels may still be fine
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name} claims too many pixels to decode safely (limit {MAX_PIXELS:,})") from e
    except UnidentifiedImageError as e:
        raise ImageError(f"{name} is not an image this app can read (allowed: {', '.join(FORMATS)})") from e
    except (OSError, SyntaxError, ValueError, EOFError) as e:  # header present but broken
        if any(s in str(e) for s in _METADATA_LIMITS):           # e.g. a PNG zTXt chunk that inflates to 64 MB
            raise ImageError(f"{name} carries more text metadata than this app reads safely; "
                             f"save it again without metadata") from e
        raise ImageError(f"{name} is damaged or truncated and cannot be read ({e})") from e
    return img, name


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    """(H, W) int or float -> uint8: 0-255 kept, up to 65535 scaled, NaN to 0, the rest clipped.

    Works in blocks of rows in float32, so a 6300x6300 16-bit PNG (a few KB on disk) costs
    about its own size plus the 8-bit result, not a gigabyte of float64 temporaries.
    """
    top = 0.0
    for r in range(0, a.shape[0], _ROWS):
        blk = a[r:r + _ROWS]
        if blk.dtype.kind == "f":
            blk = blk[np.isfinite(blk)]
        if blk.size:
            top = max(top, float(blk.max()))
    scale = np.float32(255.0 / (65535.0 if top > 255 else 255.0))
    out = np.empty(a.shape, np.uint8)
    for r in range(0, a.shape[0], _ROWS):
        blk = a[r:r + _ROWS].astype(np.float32)
        np.nan_to_num(blk, copy=False, nan=0.0, posinf=np.float32(65535.0), neginf=0.0)
        blk *= scale
        np.clip(blk, 0, 255, out=blk)
        out[r:r + _ROWS] = blk
    return out


def _to_rgb(img: Image.Image) -> Image.Image:
    """Every mode to 8-bit RGB; transparency is composited on white, 16-bit is scaled, not clipped."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        img = Image.fromarray(_scale_to_uint8(np.asarray(img)), "L")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(source) -> Image.Image:
    """bytes / path / file / PIL / array -> a validated RGB PIL image (EXIF-rotated, first frame)."""
    img, name = _open(source)
    fmt = img.format
    if fmt is not None and fmt not in FORMATS:
        raise ImageError(f"{name} is a {fmt} file; allowed formats: {', '.join(FORMATS)}")
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ImageError(f"{name} is {w}x{h} = {w * h:,} pixels; the limit is {MAX_PIXELS:,}")
    if min(w, h) < MIN_SIDE:
        raise ImageError(f"{name} is {w}x{h} pixels; images need at least {MIN_SIDE}x{MIN_SIDE} to classify")
    try:
        if getattr(img, "n_frames", 1) > 1:
            img.seek(0)            # animations: the first frame
        img.load()
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if any(s in str(e) for s in _METADATA_LIMITS):           # text chunks after the pixels are read here
            raise ImageError(f"{name} carries more text metadata than this app reads safely; "
                             f"save it again without metadata") from e
        raise ImageError(f"{name} is damaged or truncated and cannot be decoded ({e})") from e
    try:
        with warnings.catch_warnings():        # Pillow warns "Corrupt EXIF data" on every such upload
            warnings.simplefilter("ignore")
            img = ImageOps.exif_transpose(img)
    except Exception:  # corrupt EXIF must not cost the picture; orientation is a nicety
        pass
    return _to_rgb(img)


def square_resize(img: Image.Image, size: int = PREPARE_SIZE) -> Image.Image:
    """Centre square, then resize to size x size: the paper's 'shorter side 256, centre crop'.

    Cropping first keeps a 1x10000 strip from becoming a 256x2,560,000 resize.
    """
    w, h = img.size
    s = min(w, h)
    left, top = (w - s) // 2, (h - s) // 2
    return img.crop((left, top, left + s, top + s)).resize((size, size), Image.BILINEAR)


def to_uint8(img: Image.Image, size: int = PREPARE_SIZE) -> torch.Tensor:
    """(3, size, size) uint8, prepared the paper's way."""
    a = np.asarray(square_resize(img, size), dtype=np.uint8)   # (H, W, 3)
    return torch.from_numpy(a.copy()).permute(2, 0, 1)         # (3, H, W)


def normalize(x: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (0-255) or float (0-1) images (..., 3, H, W) -> float32 standardised per channel."""
    x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
    m = torch.as_tensor(mean, dtype=torch.float32, device=x.device).view(3, 1, 1)
    s = torch.as_tensor(std, dtype=torch.float32, device=x.device).view(3, 1, 1)
    return (x - m) / s


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Centre size x size window of (..., H, W)."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top:top + size, left:left + size]


def ten_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """(B, C, H, W) -> (10, B, C, size, size): the paper's 10-crop test (section 4.1) - top-left,
    top-right, bottom-left, bottom-right, centre, then the same five mirrored (crop k + 5 is crop k flipped)."""
    h, w = images.shape[-2:]
    if size > h or size > w:
        raise ValueError(f"cannot take {size}x{size} crops from {h}x{w} images")
    top, left = (h - size) // 2, (w - size) // 2
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), (top, left)]
    five = torch.stack([images[..., y:y + size, x:x + size] for y, x in corners])  # (5, B, C, size, size)
    return torch.cat([five, five.flip(-1)])                                         # (10, B, C, size, size)


def preprocess(source, input_size: int, mean, std) -> torch.Tensor:
    """Anything `open_image` takes -> the (1, 3, S, S) normalised batch the model's sidecar asks for."""
    img = source if isinstance(source, Image.Image) and source.mode == "RGB" else open_image(source)
    x = center_crop(to_uint8(img, max(PREPARE_SIZE, input_size)), input_size)  # (3, S, S)
    return normalize(x, mean, std).unsqueeze(0)                              # (1, 3, S, S)


def display_image(x: torch.Tensor, mean, std) -> np.ndarray:
    """Undo `normalize` on (1|, 3, H, W) -> (H, W, 3) uint8 for overlays."""
    x = x.detach().float().cpu()
    if x.dim() == 4:
        x = x[0]
    m = torch.tensor(mean).view(3, 1, 1)
    s = torch.tensor(std).view(3, 1, 1)
    return ((x * s + m).clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
