"""Where bytes become pixels: every caller turns its input into an RGB image here.

One decoder with one set of guards (not an image, truncated, absurd dimensions) and one
set of mode conversions (palette, alpha, 16-bit, CMYK), so the API, the UIs, training
and the cleaner all agree on what a file looks like.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp")
# Refuse before decoding anything larger: a CAPTCHA is small, a 30000x30000 PNG is an attack.
MAX_PIXELS = 4096 * 4096


def open_image(source, *, name: str | None = None, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Decode a PIL image, bytes, a path, a file object or a numpy array into an RGB image.

    Raises ImageError with a message naming `name` (or the path) on anything unreadable.
    """
    if isinstance(source, Image.Image):
        return to_rgb(source)
    if isinstance(source, np.ndarray):
        return to_rgb(_from_array(source))
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        name = name or str(path)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        with open(path, "rb") as f:
            return _decode(f, name, max_pixels)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(f"{name or 'upload'}: the file is empty")
        return _decode(io.BytesIO(bytes(source)), name or "upload", max_pixels)
    if hasattr(source, "read"):
        return _decode(source, name or getattr(source, "name", "upload"), max_pixels)
    raise ImageError(f"cannot read an image from a {type(source).__name__}; pass a path, bytes, a PIL image or an array")


def _decode(fp, name: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(fp)
            width, height = image.size  # header only: nothing decoded yet
            if width * height > max_pixels:
                raise ImageError(f"{name}: {width}x{height} is too large to be a CAPTCHA "
                                 f"(at most {max_pixels} pixels); resize it first")
            image.load()
    except ImageError:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        if isinstance(e, UnidentifiedImageError):
            raise ImageError(f"{name}: not an image (or a format Pillow cannot read)") from None
        raise ImageError(f"{name}: too large to be a CAPTCHA (Pillow's decompression-bomb guard: {e})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(f"{name}: the image is truncated or corrupted ({e})") from None
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost us the pixels
        pass
    return to_rgb(image)


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(f"an image array must be HxW, HxWx3 or HxWx4, got shape {array.shape}")
    if array.dtype == np.uint8:
        pass
    elif np.issubdtype(array.dtype, np.floating):
        array = np.clip(array * (255.0 if array.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.integer):
        array = _to_8bit(array)
    else:
        raise ImageError(f"unsupported image array dtype {array.dtype}")
    return Image.fromarray(np.ascontiguousarray(array))


def _to_8bit(values: np.ndarray) -> np.ndarray:
    """Integer pixels of any depth -> uint8, by the depth the values actually use."""
    values = values.astype(np.float64)
    top = values.max(initial=0)
    scale = 1.0 if top <= 255 else (257.0 if top <= 65535 else top / 255.0)
    return np.clip(np.round(values / scale), 0, 255).astype(np.uint8)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any Pillow mode -> RGB; transparency is composited over white, deep pixels scaled down."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode.startswith("I;16") or mode in ("I", "F"):
        array = np.asarray(image)
        if mode == "F":
            array = np.clip(array * (255.0 if array.max(initial=0) <= 1.0 else 1.0), 0, 255).astype(np.uint8)
        else:
            array = _to_8bit(array)
        return Image.fromarray(array).convert("RGB")
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if image.mode == "RGB":
            return image
    elif mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def check_decodes(path) -> str | None:
    """None if the file decodes in full, else the reason it does not (used by the cleaner)."""
    try:
        open_image(path)
    except ImageError as e:
        return str(e).split(": ", 1)[-1]
    return None
