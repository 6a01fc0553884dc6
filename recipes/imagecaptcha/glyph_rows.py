"""Which rows of a 256x256 ImageCaptcha hold text: the measurement behind the shipped `--crop`.

Run with a library venv's interpreter (see README.md here), in isolated mode:

    ~/.cache/captcha/venvs/imagecaptcha-0.7.1/bin/python -I recipes/imagecaptcha/glyph_rows.py [COUNT]
    ~/.cache/captcha/venvs/imagecaptcha-0.3/bin/python -I recipes/imagecaptcha/glyph_rows.py [COUNT]

Both releases paste each character at `(height - h) / 2`, i.e. centred vertically whatever its font
size, rotation and warp. This script draws COUNT (default 3000) label images with the library's own
`create_captcha_image` (the text only: no noise dots, arc or smoothing, which are drawn afterwards)
and prints quantiles of where the ink starts and ends, in pixels. Text is drawn white on black so
that the library's alpha mask (the glyph's luminance) is opaque. captcha 0.3 draws from the seeded
`random` module; 0.7.1 draws from `secrets`, so its figures vary slightly from run to run.
Only the standard library, Pillow and `captcha` are imported, as in generate.py.
"""
import random
import sys
import warnings

import captcha
from captcha.image import ImageCaptcha

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
QUANTILES = (0, 0.001, 0.01, 0.5, 0.99, 0.999, 1)
warnings.simplefilter("ignore", DeprecationWarning)  # 0.3 needs textsize, deprecated in Pillow 9.5


def quantiles(values):
    s = sorted(values)
    return " ".join(f"{s[min(len(s) - 1, int(q * len(s)))]:>5}" for q in QUANTILES)


def main() -> int:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    labels = random.Random("glyph_rows")
    drawer = ImageCaptcha(width=256, height=256)
    edges = {"top": [], "bottom": [], "left": [], "right": []}
    for i in range(count):
        random.seed(i)
        label = "".join(labels.choice(ALPHABET) for _ in range(5))
        image = drawer.create_captcha_image(label, (255, 255, 255, 255), (0, 0, 0))
        left, top, right, bottom = image.convert("L").point(lambda v: 255 if v > 40 else 0).getbbox()
        for key, value in zip(("left", "top", "right", "bottom"), (left, top, right - 1, bottom - 1)):
            edges[key].append(value)
    print(f"captcha {captcha.__version__}: {count} images, 256x256, ink edges in pixels")
    print(f"{'quantile':<8} " + " ".join(f"{q:>5g}" for q in QUANTILES))
    for key, values in edges.items():
        print(f"{key:<8} {quantiles(values)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
