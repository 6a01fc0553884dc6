"""Settings read from the user's data, so `train.py --data DIR --out OUT` needs nothing else.

- alphabet auto: every character of the labels, in code-point order (0-9, A-Z, a-z, others).
- length auto: the range of the labels' lengths (one number when they are all alike).
- size auto: the model input keeps the images' typical (median) aspect ratio at a height that
  keeps thin strokes legible and ResNet-50 fast on a CPU: 64 px for images up to 96 px high,
  96 up to 192, else 128; the width is the nearest multiple of 32 (the trunk's stride), between
  one and six heights.
- init auto: the shipped weights' trunk for a resnet50 (its features already read CAPTCHA
  strokes), scratch for other trunks.
Each choice is printed with its reason.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from .errors import DatasetError
from .spec import CaptchaSpec, format_length, parse_length
from .weights import SHIPPED, find_weights

SIZE_SAMPLE = 256  # images whose size is read for --size auto


def auto_alphabet(labels: list[str]) -> str:
    return "".join(sorted({ch for label in labels for ch in label}))


def auto_length(labels: list[str]) -> str:
    lengths = [len(label) for label in labels]
    return str(format_length(min(lengths), max(lengths)))


def image_sizes(paths: list[Path], limit: int = SIZE_SAMPLE) -> list[tuple[int, int]]:
    """(width, height) of up to `limit` images spread over `paths` (headers only)."""
    step = max(1, len(paths) // limit)
    sizes = []
    for path in paths[::step][:limit]:
        try:
            with Image.open(path) as im:
                sizes.append(im.size)
        except (OSError, UnidentifiedImageError):
            continue  # unreadable files are reported when they are loaded
    return sizes


def auto_size(sizes: list[tuple[int, int]], crop=(0.0, 0.0, 1.0, 1.0)) -> tuple[int, int]:
    """(height, width) of the model input for images of these sizes (see the module docstring)."""
    if not sizes:
        raise DatasetError("--size auto: none of the images could be read; give --size HxW")
    height = statistics.median(h * (crop[3] - crop[1]) for _, h in sizes)
    aspect = statistics.median(w * (crop[2] - crop[0]) / max(h * (crop[3] - crop[1]), 1) for w, h in sizes)
    input_h = 64 if height <= 96 else 96 if height <= 192 else 128
    input_w = min(6 * input_h, max(input_h, 32 * round(input_h * aspect / 32)))
    return input_h, input_w


def choose(args, folders: dict, say=print) -> tuple[CaptchaSpec, str]:
    """The spec and --init a run uses: what the user gave, and what `auto` reads from `folders`."""
    labels = [s.label for samples in folders.values() for s in samples]
    fold = " (folded to lower case)" if args.case_insensitive else ""
    alphabet, length = args.alphabet, args.length
    if alphabet == "auto":
        alphabet = auto_alphabet(labels)
        say(f"alphabet auto: the {len(alphabet)} characters of the {len(labels)} labels{fold}: {alphabet}")
    if length == "auto":
        length = auto_length(labels)
        low, high = parse_length(length)
        say(f"length auto: {length} " + (f"(every label has {low} characters)" if low == high else
                                         f"(labels have {low} to {high} characters; the models also read "
                                         f"an end symbol after the last one)"))
    height, width = args.height, args.width
    if args.size == "auto":
        sizes = image_sizes([s.path for samples in folders.values() for s in samples])
        height, width = auto_size(sizes, args.crop)
        w = statistics.median(s[0] for s in sizes)
        h = statistics.median(s[1] for s in sizes)
        say(f"size auto: {height}x{width} (HxW), for images typically {w:g}x{h:g} (WxH)")
    spec = CaptchaSpec(alphabet, str(length), height, width, crop=args.crop)
    init = args.init
    if init == "auto":
        shipped = find_weights(SHIPPED) if SHIPPED.is_dir() else {}
        init = str(SHIPPED) if args.arch == "resnet50" and shipped else "scratch"
        say(f"init auto: {'the shipped weights in ' + init if init != 'scratch' else 'scratch'} "
            f"({'a resnet50 starts from the trunk that reads the shipped CAPTCHAs' if init != 'scratch' else f'no shipped weights for {args.arch}'})")
    return spec, init
