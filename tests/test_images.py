import io

import numpy as np
import pytest
import torch
from PIL import Image

from alexnet.images import ImageError, display_image, open_image, preprocess, square_resize


def _png(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def test_transparent_png_is_composited_on_white():
    img = open_image(_png(Image.new("RGBA", (64, 32), (255, 0, 0, 0))))
    assert img.mode == "RGB" and img.size == (64, 32) and img.getpixel((3, 3)) == (255, 255, 255)


def test_sixteen_bit_is_scaled_not_clipped():
    a = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)
    img = np.asarray(open_image(_png(Image.fromarray(a))))
    assert img.min() == 0 and 250 <= img.max() <= 255 and len(np.unique(img)) > 200


def test_preprocess_round_trips_through_display():
    rgb = np.zeros((300, 400, 3), np.uint8)
    rgb[:, :, 0] = 200
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = preprocess(rgb, 227, mean, std)
    assert x.shape == (1, 3, 227, 227) and x.dtype == torch.float32
    back = display_image(x, mean, std)
    assert back.shape == (227, 227, 3) and abs(int(back[..., 0].mean()) - 200) <= 1 and back[..., 1].max() == 0


def test_extreme_strip_is_cropped_before_resizing():
    assert square_resize(Image.new("RGB", (20, 5000)), 256).size == (256, 256)


@pytest.mark.parametrize("data,msg", [(b"", "empty"), (b"not an image", "not an image"),
                                      (b"\xff\xd8\xff\xe0trunc", "damaged or truncated")])
def test_bad_bytes_get_a_sentence(data, msg):
    with pytest.raises(ImageError, match=msg):
        open_image(data)


def test_tiny_image_is_refused():
    with pytest.raises(ImageError, match="at least 16x16"):
        open_image(_png(Image.new("RGB", (1, 1))))
