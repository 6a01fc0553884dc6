#!/usr/bin/env python3
"""Isolated glyphs exactly as ImageCaptcha draws them, for glyph_floor.py.

Is a confusable pair (O/0, v/V, ...) readable at all in the draws our model misreads? A reader that
sees one glyph alone, as the library made it before pasting (no noise, no neighbours, no colour, no
squeeze), has strictly more to go on than one that reads the finished CAPTCHA. This script draws such
glyphs with the library's own code: ``create_captcha_image`` is called with a one-character text and
Image.paste is watched, so rotation, warp and the random font size are the library's, not a copy.

With --in-captcha it draws whole CAPTCHAs instead (``generate_image``: noise, neighbours, colours,
the squeeze of a too-wide text, the smoothing filter) and cuts each character of --classes out of the
finished image, centred on the box the library pasted it into: what a reader told where the glyph is
could see. Comparing a reader of these with one of the glyphs alone says whether the finished image
still holds the cue.

Run it from the library's venv (``python -I``, like generate.py):

    ~/.cache/captcha/venvs/imagecaptcha-0.3/bin/python -I recipes/imagecaptcha/glyphs.py \
        --classes 0Oo --base 7001 --count 1000 [--in-captcha] --out glyphs-test

Draw i gets seed base * 10_000_000 + i (disjoint from build.sh and stream.py when base is). Alone, it
is the character classes[i % len(classes)]; in a CAPTCHA, each of the label's 5 characters is, with
probability 1/2, one of --classes, else any of 0-9A-Za-z (random.Random("label:<seed>")), and every
character of --classes in it is kept. Writes OUT.u8 (N x 64 x 48 uint8: alone, the glyph's alpha
centred on a blank canvas; in a CAPTCHA, 255 minus the finished image's luminance around the glyph)
and OUT.txt (one "char size" line per glyph, size = the font size the library picked, seen as it
draws the text). --start splits a set between processes: their outputs, concatenated, are the
single run's bytes.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate  # noqa: E402  (imports the PyPI library and refuses our own package)

H, W = 64, 48


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--classes", required=True, help="characters to draw, in turn")
    p.add_argument("--base", type=int, required=True, help="seed base (generate.image_seed)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--start", type=int, default=0, help="first index (to split a set between processes)")
    p.add_argument("--in-captcha", action="store_true", help="cut the glyphs out of whole CAPTCHAs")
    p.add_argument("--out", required=True, help="path prefix: writes OUT.u8 and OUT.txt")
    args = p.parse_args()
    warnings.simplefilter("ignore", DeprecationWarning)
    _, cimage = generate._import_library()
    from PIL import Image, ImageDraw

    drawer = cimage.ImageCaptcha(width=256, height=256)
    pasted = []
    original_paste = Image.Image.paste

    def paste(self, im, box=None, mask=None):
        if mask is not None:
            pasted.append((im, box, self.size[0]))  # the glyph, where, and the (maybe widened) canvas width
        return original_paste(self, im, box, mask)

    fonts = []
    original_text = ImageDraw.ImageDraw.text

    def text(self, xy, string, *a, font=None, **kw):
        fonts.append((string, font.size))
        return original_text(self, xy, string, *a, font=font, **kw)

    Image.Image.paste, ImageDraw.ImageDraw.text = paste, text
    with open(args.out + ".u8.part", "wb") as pixels, open(args.out + ".txt.part", "w") as labels:
        for i in range(args.start, args.start + args.count):
            seed = generate.image_seed(args.base, i)
            pasted.clear()
            fonts.clear()
            if not args.in_captcha:
                c = args.classes[i % len(args.classes)]
                random.seed(seed)
                drawer.create_captcha_image(c, (0, 0, 0, 255), (255, 255, 255))
                glyph = pasted[-1][0].getchannel("A")  # the last paste is the character (a blank may come first)
                canvas = Image.new("L", (W, H))
                canvas.paste(glyph, ((W - glyph.size[0]) // 2, (H - glyph.size[1]) // 2))
                pixels.write(canvas.tobytes())
                labels.write(f"{c} {fonts[-1][1]}\n")
                continue
            rng = random.Random(f"label:{seed}")
            label = "".join(rng.choice(args.classes) if rng.random() < 0.5 else rng.choice(generate.DEFAULT_ALPHABET)
                            for _ in range(5))
            random.seed(seed)
            image = drawer.generate_image(label).convert("L")
            if len(fonts) != len(pasted):
                raise SystemExit(f"glyphs.py: seed {seed}: {len(fonts)} glyphs drawn but {len(pasted)} pasted")
            for (c, size), (glyph, (x, y), width) in zip(fonts, pasted):
                if c not in args.classes:
                    continue  # a blank, or a character of no interest
                squeeze = 256 / width  # a text wider than the image was drawn wide, then resized to 256
                cx, cy = round((x + glyph.size[0] / 2) * squeeze), y + glyph.size[1] // 2
                crop = image.crop((cx - W // 2, cy - H // 2, cx + W // 2, cy + H // 2))
                pixels.write(bytes(255 - v for v in crop.tobytes()))
                labels.write(f"{c} {size}\n")
    os.replace(args.out + ".u8.part", args.out + ".u8")
    os.replace(args.out + ".txt.part", args.out + ".txt")
    return 0


if __name__ == "__main__":
    sys.exit(main())
