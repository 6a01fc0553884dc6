"""Every way an image can arrive decodes to the same RGB picture, or to a clear ImageError."""
import io

import numpy as np
import pytest
from PIL import Image

from captcha.errors import ImageError
from captcha.images import open_image


def _reference() -> Image.Image:
    """A grey-level ramp, so conversions that lose or misscale values are caught."""
    ramp = np.tile(np.linspace(0, 255, 64).astype(np.uint8), (32, 1))
    return Image.fromarray(ramp, "L")


def _encode(image: Image.Image, fmt: str, **kw) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kw)
    return buffer.getvalue()


def _grey(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image.convert("L"), dtype=np.int16)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_formats(fmt):
    decoded = open_image(_encode(_reference().convert("RGB"), fmt, **({"quality": 95} if fmt == "JPEG" else {})))
    assert decoded.size == (64, 32)
    assert np.abs(_grey(decoded) - _grey(_reference().convert("RGB"))).max() <= (12 if fmt in ("JPEG", "WEBP") else 1)


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "CMYK", "I", "I;16", "F", "1"])
def test_modes(mode):
    ref = _reference()
    if mode == "I;16":
        image = Image.fromarray(np.asarray(ref).astype(np.uint16) * 257)
    elif mode == "I":
        image = Image.fromarray(np.asarray(ref).astype(np.int32) * 257)
    elif mode == "F":
        image = Image.fromarray(np.asarray(ref).astype(np.float32) / 255.0)
    elif mode == "1":
        image = ref.point(lambda v: 255 if v > 127 else 0).convert("1")
        ref = image.convert("L")
    else:
        image = ref.convert(mode)
    decoded = open_image(image)
    assert np.abs(_grey(decoded) - _grey(ref.convert("RGB"))).max() <= 2, mode


def test_sixteen_bit_png_file_is_scaled_not_clipped(tmp_path):
    path = tmp_path / "deep.png"
    Image.fromarray(np.asarray(_reference()).astype(np.uint16) * 257).save(path)
    assert np.abs(_grey(open_image(path)) - np.asarray(_reference())).max() <= 1


def test_transparency_is_composited_over_white():
    rgba = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    rgba.putpixel((0, 0), (255, 0, 0, 255))
    decoded = open_image(_encode(rgba, "PNG"))
    assert decoded.getpixel((1, 1)) == (255, 255, 255) and decoded.getpixel((0, 0)) == (255, 0, 0)
    palette = Image.new("P", (8, 8), 0)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 1)
    decoded = open_image(_encode(palette, "PNG", transparency=0))  # index 0 is transparent black
    assert decoded.getpixel((1, 1)) == (255, 255, 255) and decoded.getpixel((0, 0)) == (255, 0, 0)


@pytest.mark.parametrize("array", [
    np.zeros((10, 20), np.uint8), np.zeros((10, 20, 3), np.uint8), np.zeros((10, 20, 4), np.uint8),
    np.zeros((10, 20), np.uint16), np.zeros((10, 20, 3), np.float32), np.zeros((10, 20, 1), np.uint8)])
def test_numpy_arrays(array):
    assert open_image(array).size == (20, 10)


def test_paths_and_file_objects(tmp_path):
    path = tmp_path / "x.png"
    _reference().save(path)
    assert open_image(path).size == open_image(str(path)).size == (64, 32)
    with open(path, "rb") as f:
        assert open_image(f).size == (64, 32)


def test_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        open_image(b"hello, I am text", name="note.txt")


def test_empty_upload():
    with pytest.raises(ImageError, match="empty"):
        open_image(b"")


def test_truncated_png():
    data = _encode(Image.effect_noise((256, 256), 64).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match="truncated"):
        open_image(data[: len(data) // 2], name="half.png")


def test_missing_file(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")


def test_huge_dimensions_are_refused_before_decoding():
    # A 30000x30000 1-bit PNG is ~110 KB on disk and 2.7 GB decoded as RGB.
    data = _encode(Image.new("1", (30000, 30000)), "PNG")
    assert len(data) < 1_000_000
    with pytest.raises(ImageError, match="too large"):
        open_image(data, name="bomb.png")


def test_wrong_type():
    with pytest.raises(ImageError, match="cannot read"):
        open_image(12345)
