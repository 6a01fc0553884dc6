"""Generated CAPTCHAs in the style of the Large Captcha Dataset (the PyPI `captcha` library's ImageCaptcha).

Random light background, one random text colour, each character drawn at a random font size,
cropped to its own box, rotated and warped, pasted with jittered spacing and optional word
gaps, then 30 noise dots, a noise arc and a smoothing pass. Everything comes from one
`random.Random(seed)`, so an image is a pure function of (text, seed, options).

We cannot import that library (our package has its name), so this is our own drawing code;
the shipped weights' data recipe, which does use the library, is in recipes/imagecaptcha/.
"""
from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from .spec import DEFAULT_ALPHABET, parse_length

DEFAULT_FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu", "/usr/share/fonts/TTF")
DEFAULT_FONT_NAMES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSerif.ttf", "DejaVuSansMono.ttf")
FONT_SIZES = (42, 50, 56)  # ImageCaptcha's, for a 256-pixel-wide image
_ALPHA_BOOST = [min(255, int(i * 1.97)) for i in range(256)]


def find_fonts(fonts=None) -> list[str]:
    """TTF/OTF paths from `fonts` (files or folders); by default the system's DejaVu fonts.

    An empty list means Pillow's built-in font.
    """
    if fonts:
        found = []
        for entry in fonts:
            path = Path(entry)
            if path.is_dir():
                found += sorted(str(p) for p in path.iterdir() if p.suffix.lower() in (".ttf", ".otf"))
            elif path.is_file():
                found.append(str(path))
            else:
                raise FileNotFoundError(f"font {entry}: no such file or folder")
        if not found:
            raise FileNotFoundError(f"no .ttf/.otf fonts in {', '.join(map(str, fonts))}")
        return found
    for folder in DEFAULT_FONT_DIRS:
        found = [str(Path(folder) / n) for n in DEFAULT_FONT_NAMES if (Path(folder) / n).is_file()]
        if found:
            return found
    return []


@lru_cache(maxsize=64)
def _font(path: str | None, size: int) -> ImageFont.FreeTypeFont:
    if path is None:
        return ImageFont.load_default(size=size)
    return ImageFont.truetype(path, size)


def _colour(rng: random.Random, low: int, high: int, alpha: int | None = None) -> tuple:
    rgb = tuple(rng.randint(low, high) for _ in range(3))
    return rgb + (alpha,) if alpha is not None else rgb


def _character(rng: random.Random, ch: str, font, colour) -> Image.Image:
    """One character on a transparent tile: drawn, cropped to its box, rotated, warped."""
    left, top, right, bottom = font.getbbox(ch)
    w, h = max(1, right), max(1, bottom)
    dx, dy = rng.randint(0, 4), rng.randint(0, 6)
    tile = Image.new("RGBA", (w + dx, h + dy))
    ImageDraw.Draw(tile).text((dx, dy), ch, font=font, fill=colour)
    box = tile.getbbox()
    if box:
        tile = tile.crop(box)
    tile = tile.rotate(rng.uniform(-30, 30), Image.Resampling.BILINEAR, expand=True)
    w, h = tile.size
    wx, wy = w * rng.uniform(0.1, 0.3), h * rng.uniform(0.2, 0.3)
    x1, y1 = int(rng.uniform(-wx, wx)), int(rng.uniform(-wy, wy))
    x2, y2 = int(rng.uniform(-wx, wx)), int(rng.uniform(-wy, wy))
    w2, h2 = w + abs(x1) + abs(x2), h + abs(y1) + abs(y2)
    quad = (x1, y1, -x1, h2 - y2, w2 + x2, h2 + y2, w2 - x2, -y1)
    return tile.resize((w2, h2)).transform((w, h), Image.Transform.QUAD, quad)


def generate(text: str, seed: int | str = 0, width: int = 256, height: int = 256,
             fonts: list[str] | None = None) -> Image.Image:
    """Draw `text` as a CAPTCHA; the same (text, seed, size, fonts) gives the same pixels."""
    rng = random.Random(f"captcha:{seed}")
    font_paths = fonts if fonts is not None else find_fonts()
    scale = min(width / 256, height / 60, 1.0)
    background = _colour(rng, 238, 255)
    colour = _colour(rng, 10, 200, rng.randint(220, 255))

    tiles = []
    for ch in text:
        font = _font(rng.choice(font_paths) if font_paths else None, int(rng.choice(FONT_SIZES) * scale))
        if rng.random() > 0.5:
            tiles.append(_character(rng, " ", font, colour))
        tiles.append(_character(rng, ch, font, colour))

    text_width = sum(t.size[0] for t in tiles)
    canvas = Image.new("RGB", (max(text_width, width), height), background)
    average = text_width // max(1, len(text))
    jitter, x = int(0.25 * average), int(0.1 * average)
    for tile in tiles:
        w, h = tile.size
        canvas.paste(tile, (x, (height - h) // 2), tile.getchannel("A").point(_ALPHA_BOOST))
        x += w + rng.randint(-jitter, 0)
    if canvas.size[0] > width:
        canvas = canvas.resize((width, height))

    draw = ImageDraw.Draw(canvas)
    for _ in range(30):  # noise dots
        px, py = rng.randint(0, width), rng.randint(0, height)
        draw.line(((px, py), (px - 1, py - 1)), fill=colour, width=3)
    x1, x2 = rng.randint(0, width // 5), rng.randint(width - width // 5, width)
    y1 = rng.randint(height // 5, height - height // 5)
    y2 = rng.randint(y1, height - height // 5)
    draw.arc((x1, y1, x2, y2), rng.randint(0, 20), rng.randint(160, 200), fill=colour)
    return canvas.filter(ImageFilter.SMOOTH)


def random_text(rng: random.Random, alphabet: str = DEFAULT_ALPHABET, length=5) -> str:
    """`length` characters of `alphabet`; a range (4-8, "4-8" or (4, 8)) draws the length first."""
    low, high = tuple(length) if isinstance(length, (tuple, list)) else parse_length(length)
    n = low if low == high else rng.randint(low, high)
    return "".join(rng.choice(alphabet) for _ in range(n))


def sample(index: int, seed: int, alphabet: str, length, width: int = 256, height: int = 256,
           fonts: list[str] | None = None) -> tuple[Image.Image, str]:
    """The `index`-th CAPTCHA of the stream named by `seed`: (image, text)."""
    rng = random.Random(f"text:{seed}:{index}")
    text = random_text(rng, alphabet, length)
    return generate(text, seed=f"{seed}:{index}", width=width, height=height, fonts=fonts), text


def write_folder(out, count: int, seed: int = 0, alphabet: str = DEFAULT_ALPHABET, length=5,
                 width: int = 256, height: int = 256, fonts: list[str] | None = None) -> list[Path]:
    """Write `count` CAPTCHAs named by their answers (`_2`, `_3`... for repeats) into `out`."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fonts = find_fonts(fonts) if fonts else find_fonts()
    written = []
    for index in range(count):
        image, text = sample(index, seed, alphabet, length, width, height, fonts)
        path, n = out / f"{text}.png", 1
        while path.exists():
            n += 1
            path = out / f"{text}_{n}.png"
        image.save(path)
        written.append(path)
    return written
