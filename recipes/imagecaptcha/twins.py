#!/usr/bin/env python3
"""Each misread character beside its twin: the same draw with the character the model read instead.

captcha 0.3 takes the same random numbers for every character (font size, rotation, warp, noise),
and DroidSansMono gives nearly every character the same box, so reseeding with an image's seed and
drawing its label with one character swapped reproduces the image exactly except for that glyph.
This sheet shows, for every misread character of a held-out set, the crop the model saw (left) and
the crop it would have seen had the label held what it read (right). Standalone like generate.py:

    ~/.cache/captcha/venvs/imagecaptcha-0.3/bin/python -I recipes/imagecaptcha/twins.py \
        --base 9000002 --count 2000 --eval ~/.cache/captcha/eval/heldout-v03.json --params params-v03.jsonl \
        --out twins-v03.png

--params is draw_params.py's output for the same set (it says where each glyph was pasted and at
which font size); rows are sorted by font size, and each is labelled truth->read and the size.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import warnings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import generate  # noqa: E402

warnings.simplefilter("ignore", DeprecationWarning)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--eval", required=True, help="python -m captcha evaluate --json output for the set")
    p.add_argument("--params", required=True, help="draw_params.py's JSON lines for the set")
    p.add_argument("--form", default="one_go")
    p.add_argument("--columns", type=int, default=8, help="pairs per row of the sheet")
    p.add_argument("--scale", type=int, default=1, help="pixel zoom of the crops")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    _, cimage = generate._import_library()
    from PIL import Image, ImageDraw

    with open(args.eval) as f:
        misread = {e["file"]: e["read"] for e in json.load(f)[args.form]["errors"]}
    with open(args.params) as f:
        params = {r["file"]: r for r in map(json.loads, f)}
    drawer = cimage.ImageCaptcha(width=256, height=256)
    tiles = []  # (size, truth, read, crop, twin crop)
    for _, seed, label, path in generate.plan("", args.count, args.base, generate.DEFAULT_ALPHABET, 5, set()):
        read = misread.get(os.path.basename(path))
        if read is None:
            continue
        chars = params[os.path.basename(path)]["chars"]
        random.seed(seed)
        image = drawer.generate_image(label)
        for k, (truth, got) in enumerate(zip(label, read)):
            if truth == got:
                continue
            random.seed(seed)
            twin = drawer.generate_image(label[:k] + got + label[k + 1:])
            x0, y0, x1, y1 = chars[k]["box"]
            box = (max(0, x0 - 4), max(0, y0 - 4), min(256, x1 + 4), min(256, y1 + 4))
            tiles.append((chars[k]["size"], truth, got, image.crop(box), twin.crop(box)))
    tiles.sort(key=lambda t: (t[0], t[1].lower(), t[1]))
    scale, text_h = args.scale, 12
    crop_w = max([max(t[3].width, t[4].width) for t in tiles] + [1]) * scale
    crop_h = max([max(t[3].height, t[4].height) for t in tiles] + [1]) * scale
    cell_w, cell_h = max(2 * crop_w + 10, 100), crop_h + 6
    rows = (len(tiles) + args.columns - 1) // args.columns
    sheet = Image.new("RGB", (args.columns * cell_w, max(1, rows) * (cell_h + text_h)), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (size, truth, got, crop, twin) in enumerate(tiles):
        x, y = (i % args.columns) * cell_w, (i // args.columns) * (cell_h + text_h)
        draw.text((x + 4, y + 1), f"{truth}->{got}  size {size}", fill="black")
        for j, im in enumerate((crop, twin)):
            sheet.paste(im.resize((im.width * scale, im.height * scale), Image.NEAREST),
                        (x + 4 + j * (crop_w + 2), y + text_h))
    sheet.quantize(colors=128).save(args.out, optimize=True)  # a small file for the README
    print(f"twins.py: {len(tiles)} misread characters -> {args.out} (left: drawn, right: the same draw as read)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
