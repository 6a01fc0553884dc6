#!/usr/bin/env python3
"""ImageCaptcha draws as raw pixels on stdout, without end: a `train.py --stream` worker.

Standalone like generate.py, and for the same reason (the PyPI library and our package are
both called ``captcha``): run it with ``python -I`` and point --lib at a folder that holds
the library's ``captcha`` package. Labels and seeds follow generate.py exactly (image i of
base S has seed S * 10_000_000 + i), so a stream is reproducible and seed bases keep
training and held-out draws apart.

    python -I stream.py --lib DIR --base 5000 [--count N] [--font-sizes 42,42,50,56]

Each record is what captcha/streams.py reads (this script cannot import it): uint16 label bytes,
uint16 width, uint16 height (little-endian), the label, then the 256x256 RGB pixels, rows top to
bottom. No PNG round trip: PNG is lossless, so the pixels are what generate.py would have saved;
train.py crops and resizes them with the weights' spec, as it does every image.

captcha 0.3 calls ImageDraw.textsize(), which Pillow 10 removed. Where it is missing (a
machine with only a new Pillow, e.g. the GPU image), it is put back as the right/bottom
of font.getbbox(), which is what Pillow 9's textsize returned (size plus offset).
"""
from __future__ import annotations

import argparse
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def restore_textsize() -> bool:
    from PIL import ImageDraw
    if hasattr(ImageDraw.ImageDraw, "textsize"):
        return False

    def textsize(self, text, font=None, *args, **kwargs):
        left, top, right, bottom = (font or self.getfont()).getbbox(text)
        return right, bottom

    ImageDraw.ImageDraw.textsize = textsize
    return True


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lib", required=True, help="folder holding the PyPI library's captcha/ package")
    p.add_argument("--base", type=int, required=True, help="seed base (generate.py's --seed)")
    p.add_argument("--count", type=int, default=0, help="stop after N images (default: never)")
    p.add_argument("--alphabet", default=None)
    p.add_argument("--length", type=int, default=5)
    p.add_argument("--font-sizes", help="ImageCaptcha's font_sizes, each glyph picks one at random "
                   "(default: the library's 42,50,56; repeat a size to draw it more often)")
    args = p.parse_args()
    sys.path[:0] = [os.path.abspath(args.lib), HERE]
    import generate  # noqa: E402  (labels, seeds, the seeded secrets shim)
    patched = restore_textsize()
    library, cimage = generate._import_library()
    alphabet = args.alphabet or generate.DEFAULT_ALPHABET
    sizes = tuple(int(v) for v in args.font_sizes.split(",")) if args.font_sizes else None
    from PIL import __version__ as pillow
    print(f"stream.py: captcha {library.__version__} from {os.path.dirname(library.__file__)}, Pillow {pillow}"
          f"{' (textsize restored)' if patched else ''}, base {args.base}"
          f"{f', font sizes {args.font_sizes}' if sizes else ''}", file=sys.stderr, flush=True)
    drawer = cimage.ImageCaptcha(width=256, height=256, font_sizes=sizes)
    out = sys.stdout.buffer
    index = 0
    try:
        while not args.count or index < args.count:
            seed = generate.image_seed(args.base, index)
            label = generate.make_label(seed, alphabet, args.length)
            random.seed(seed)
            image = drawer.generate_image(label).convert("RGB")
            text = label.encode("utf-8")
            out.write(struct.pack("<HHH", len(text), *image.size) + text + image.tobytes())
            index += 1
        out.flush()
    except BrokenPipeError:  # the reader is done with us
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
