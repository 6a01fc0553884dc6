#!/usr/bin/env python3
"""What ImageCaptcha chose for every character of a seeded set: font size, rotation, warp, overlaps.

The misread characters of a held-out set can only be explained if we know how each one was drawn.
generate.py seeds the global ``random`` module per image, so the draw can be replayed exactly; this
script replays it with the library's own code, records the random choices made for each glyph, and
measures what covers the glyph in the finished image. Standalone like generate.py (run it with
``python -I`` from the library's venv); it refuses to write anything unless the replayed image is
pixel-identical to the PNG that build.sh wrote, when --check DIR is given.

    ~/.cache/captcha/venvs/imagecaptcha-0.3/bin/python -I recipes/imagecaptcha/draw_params.py \
        --base 9000002 --count 2000 --check ~/.cache/captcha/data/imagecaptcha/heldout-v03 --out params-v03.jsonl

One JSON line per image: {"seed", "label", "file", "chars": [...]}, and per character
  size          font size picked (42, 50 or 56)
  angle         rotation in degrees (uniform -30..30)
  warp_x/warp_y the warp's corner shifts as a fraction of the glyph box (0.3: up to 0.3 w / 0.3 h)
  space_before  whether the library put a blank glyph before it
  box           where it was pasted (x0, y0, x1, y1) in the 256x256 image
  ink           inked pixels of its mask
  noise         fraction of its ink also covered by the noise dots and arc
  neighbours    fraction of its ink also covered by the ink of the other characters
  opacity       how opaque the library pasted it: its mask is the glyph's luminance x 1.97, not its
                alpha, so a dark text colour gives a faint glyph (1.0 = fully opaque)
Only captcha 0.3 (which draws from ``random``) is supported: it is the style whose errors need it.
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
import generate  # noqa: E402  (labels and seeds, exactly as build.sh drew them)

warnings.simplefilter("ignore", DeprecationWarning)  # 0.3 calls textsize, deprecated in Pillow 9.5


class RecordingRandom:
    """Stands in for ``random`` inside captcha.image and logs every call the library makes."""

    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        fn = getattr(random, name)

        def call(*args):
            value = fn(*args)
            self.calls.append((name, args, value))
            return value
        return call


def glyph_params(calls, label):
    """Split the logged calls into glyphs: [(char or ' ', size, angle, fx, fy, x1, y1, x2, y2)]."""
    glyphs, i = [], 0

    def take_glyph(ch):
        nonlocal i
        name, _, font = calls[i]
        assert name == "choice", calls[i]
        _, _, angle = calls[i + 3]
        _, _, fx = calls[i + 4]
        _, _, fy = calls[i + 5]
        warp = [v for _, _, v in calls[i + 6:i + 10]]
        glyphs.append({"c": ch, "size": font.size, "angle": angle, "fx": fx, "fy": fy, "warp": warp})
        i += 10

    while calls[i][0] != "random":  # the background and text colours come first
        i += 1
    for ch in label:
        name, _, value = calls[i]
        assert name == "random", calls[i]
        i += 1
        space = value > 0.5
        if space:
            take_glyph(" ")
        take_glyph(ch)
        glyphs[-1]["space_before"] = space
    return glyphs


def replay(cimage, drawer, seed, label):
    """Draw the image of `seed` again, returning it with each glyph's parameters and overlaps."""
    from PIL import Image, ImageChops

    recorder = RecordingRandom()
    pastes, noise = [], Image.new("L", (256, 256))
    original_paste = Image.Image.paste

    def paste(self, im, box=None, mask=None):
        if mask is not None and self.size[1] == 256:
            pastes.append((box, im.getchannel("A"), mask.getextrema()[1], self.size[0]))
        return original_paste(self, im, box, mask)

    def with_noise_mask(method):
        def draw(image, color, *args, **kwargs):
            state = random.getstate()
            method(noise, 255, *args, **kwargs)  # same random draws, on a blank mask
            random.setstate(state)
            return method(image, color, *args, **kwargs)
        return draw

    dots, curve = cimage.ImageCaptcha.create_noise_dots, cimage.ImageCaptcha.create_noise_curve
    cimage.random, Image.Image.paste = recorder, paste
    drawer.create_noise_dots, drawer.create_noise_curve = with_noise_mask(dots), with_noise_mask(curve)
    try:
        random.seed(seed)
        image = drawer.generate_image(label)
    finally:
        cimage.random, Image.Image.paste = random, original_paste
        del drawer.create_noise_dots, drawer.create_noise_curve

    glyphs = glyph_params(recorder.calls, label)
    if len(pastes) != len(glyphs):
        raise RuntimeError(f"seed {seed}: {len(pastes)} pastes for {len(glyphs)} glyphs")
    resized = pastes[0][3] > 256  # text wider than the image: the library squeezed it (overlaps approximate)
    inks = []
    for box, alpha, _, _ in pastes:
        layer = Image.new("L", (pastes[0][3], 256))
        layer.paste(alpha.point(lambda p: 255 if p > 127 else 0), box)
        inks.append(layer.resize((256, 256)) if resized else layer)
    noise_ink = noise.point(lambda p: 255 if p > 0 else 0)
    chars = []
    for k, (glyph, (box, alpha, opacity, _)) in enumerate(zip(glyphs, pastes)):
        if glyph["c"] == " ":
            continue
        ink = inks[k]
        area = ink.histogram()[255]
        others = Image.new("L", (256, 256))
        for j, other in enumerate(inks):
            if j != k:
                others = ImageChops.lighter(others, other)
        covered = lambda layer: ImageChops.multiply(ink, layer).histogram()[255] / max(1, area)  # noqa: E731
        w, h = alpha.size
        chars.append({
            "c": glyph["c"], "size": glyph["size"], "angle": round(glyph["angle"], 2),
            "warp_x": [round(abs(v) / w, 3) for v in glyph["warp"][0::2]],
            "warp_y": [round(abs(v) / h, 3) for v in glyph["warp"][1::2]],
            "space_before": glyph["space_before"],
            "box": [box[0], box[1], box[0] + w, box[1] + h],
            "opacity": round(min(255, opacity) / 255, 3),
            "ink": area, "noise": round(covered(noise_ink), 3), "neighbours": round(covered(others), 3),
        })
    return image, chars, resized


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--base", type=int, required=True, help="seed base of the set (build.sh: 9000002 for heldout-v03)")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--check", metavar="DIR", help="the set's folder: every replay must match its PNG pixel for pixel")
    p.add_argument("--out", required=True, help="JSON lines file to write")
    args = p.parse_args()
    library, cimage = generate._import_library()
    if library.__version__ != "0.3":
        sys.exit(f"draw_params.py: captcha {library.__version__}: only 0.3 is supported (see the docstring)")
    from PIL import Image

    drawer = cimage.ImageCaptcha(width=256, height=256)
    tasks = generate.plan(args.check or "", args.count, args.base, generate.DEFAULT_ALPHABET, 5, set())
    with open(args.out + ".part", "w") as f:
        for index, seed, label, path in tasks:
            image, chars, resized = replay(cimage, drawer, seed, label)
            if args.check:
                with Image.open(path) as saved:
                    if saved.convert("RGB").tobytes() != image.convert("RGB").tobytes():
                        sys.exit(f"draw_params.py: replay of seed {seed} differs from {path}")
            f.write(json.dumps({"seed": seed, "label": label, "file": os.path.basename(path),
                                "resized": resized, "chars": chars}) + "\n")
    os.replace(args.out + ".part", args.out)
    print(f"draw_params.py: {len(tasks)} images replayed{' and matched' if args.check else ''} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
