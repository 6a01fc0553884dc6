"""Why this style's case pairs are hard: how ImageCaptcha sizes each glyph, shown without its noise.

Run with a library venv's interpreter (see README.md here), in isolated mode:

    ~/.cache/captcha/venvs/imagecaptcha-0.7.1/bin/python -I recipes/imagecaptcha/glyph_pairs.py OUT.png
    ~/.cache/captcha/venvs/imagecaptcha-0.3/bin/python -I recipes/imagecaptcha/glyph_pairs.py OUT.png

Both releases draw a character, crop the image to its ink, and resize that ink to the character's
text box (0.3: `textsize`, 0.7.1: `multiline_textbbox` from (1, 1)), which for a monospace font is about
the same for every character of a font size. So a lower-case `v` is stretched to the height of a `V`.
This script repeats exactly those steps with the library's own font and box function, but with no
offset, rotation or warp, prints the overlap (intersection over union of the inked pixels) of each
pair at each font size, and writes the glyphs side by side to OUT.png. Only the standard library,
Pillow and `captcha` are imported, as in generate.py.
"""
import os
import sys
import warnings

import captcha
from PIL import Image, ImageChops, ImageDraw, ImageFont

PAIRS = ["vV", "xX", "zZ", "cC", "oO", "0O", "sS", "uU", "wW", "Il", "kK", "pP", "aA", "1l"]
SIZES = (42, 50, 56)  # ImageCaptcha's default font sizes
warnings.simplefilter("ignore", DeprecationWarning)  # 0.3 needs textsize, deprecated in Pillow 9.5
FONT = os.path.join(os.path.dirname(captcha.__file__), "data", "DroidSansMono.ttf")


def box(draw, ch, font):
    """The library's own text box for one character: (w, h) that the ink is resized to."""
    if hasattr(draw, "textsize"):  # 0.3 (Pillow < 10)
        return draw.textsize(ch, font=font)
    _, _, w, h = draw.multiline_textbbox((1, 1), ch, font=font)  # 0.5 and later
    return int(w), int(h)


def glyph(ch, size):
    """The ink mask the library pastes for `ch`, minus its random offset, rotation and warp."""
    font = ImageFont.truetype(FONT, size)
    w, h = box(ImageDraw.Draw(Image.new("RGB", (1, 1))), ch, font)
    im = Image.new("L", (w, h))
    ImageDraw.Draw(im).text((0, 0), ch, font=font, fill=255)
    im = im.crop(im.getbbox()).resize((w, h))
    return im.point(lambda p: 255 if p > 127 else 0)


def overlap(a, b):
    b = b.resize(a.size).point(lambda p: 255 if p > 127 else 0)
    both, either = ImageChops.multiply(a, b).histogram()[255], ImageChops.lighter(a, b).histogram()[255]
    return both / max(1, either)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "glyph_pairs.png"
    print(f"captcha {captcha.__version__ if hasattr(captcha, '__version__') else '?'}, font {os.path.basename(FONT)}")
    print("| size | " + " | ".join(PAIRS) + " |")
    print("|---" * (len(PAIRS) + 1) + "|")
    for size in SIZES:
        print(f"| {size} | " + " | ".join(f"{overlap(glyph(p[0], size), glyph(p[1], size)):.2f}" for p in PAIRS) + " |")
    tiles = [glyph(ch, 50) for p in PAIRS for ch in p]
    w, h = max(t.width for t in tiles), max(t.height for t in tiles)
    sheet = Image.new("L", (len(tiles) * (w + 4) + 4, h + 8), 255)
    for i, t in enumerate(tiles):
        sheet.paste(0, (4 + i * (w + 4), 4), t)
    sheet.save(out)
    print(f"wrote {out}: each pair at font size 50, left then right")


if __name__ == "__main__":
    main()
