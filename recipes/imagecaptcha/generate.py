#!/usr/bin/env python3
"""Deterministic CAPTCHA images made with the PyPI ``captcha`` library's ImageCaptcha.

Standalone: needs only the standard library, the PyPI ``captcha`` package and
Pillow. It must NOT be run in the project's own environment, whose package is
also called ``captcha`` (see README.md); build.sh runs it with ``python -I``
from a dedicated venv.

    python generate.py OUT_DIR --count N --seed S [--length 5] [--alphabet ...]
                       [--width 256 --height 256] [--workers 2] [--resume]

``--length 4-8`` draws each label's length first (uniformly), then its characters.

Image i (0 <= i < N) gets the per-image seed

    seed_i = S * 10_000_000 + i          (S >= 0, i < 10_000_000)

which is injective in (S, i), so runs with different bases never share a seed.
From seed_i:
  * the label: random.Random("label:%d" % seed_i), ``length`` x rng.choice(alphabet)
  * the image: the global ``random`` module is reseeded with seed_i right before
    ImageCaptcha.generate_image(label). captcha<=0.4 draws from ``random``;
    captcha>=0.5 (0.7.1 included) draws from ``secrets`` (os.urandom, NOT
    seedable), so ``captcha.image.secrets`` is replaced by a shim with the same
    randbelow/randbits/choice semantics backed by the seeded ``random`` module.
The output is therefore byte-for-byte reproducible for a given seed, captcha
version, Pillow version (its wheel bundles FreeType and zlib) and CPython minor
version.

Files are written as OUT_DIR/<label>.png; a label already taken (by an earlier
image of this run, or by a file already in OUT_DIR) gets <label>_2.png,
<label>_3.png, ... Names are planned in index order before any image is drawn,
so they do not depend on the number of workers or on scheduling.

--resume continues an interrupted run of the SAME command: names are planned as
if OUT_DIR had been empty and images whose file already exists are skipped.
Every file is written to a temporary name and renamed into place, so a killed
run leaves no truncated PNG behind.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import sys
import time

DEFAULT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SEED_STRIDE = 10_000_000  # max images per seed base; keeps seed_i injective in (base, i)
TMP_PREFIX = ".tmp-"
FORBIDDEN_LABEL_CHARS = set("_./\\\0") | set(" \t\r\n")


def image_seed(base: int, index: int) -> int:
    """Per-image seed: base * 10_000_000 + index (injective for base >= 0, 0 <= index < 10**7)."""
    if base < 0:
        raise ValueError("seed base must be >= 0")
    if not 0 <= index < SEED_STRIDE:
        raise ValueError(f"image index must be in [0, {SEED_STRIDE})")
    return base * SEED_STRIDE + index


def make_label(seed: int, alphabet: str, length) -> str:
    """The label of the image with per-image seed ``seed`` (its own RNG, independent of the drawing RNG).
    ``length``: a number, or (shortest, longest) for a range, whose length is drawn first."""
    rng = random.Random(f"label:{seed}")  # str seeds go through SHA-512: stable across runs and PYTHONHASHSEED
    low, high = length if isinstance(length, tuple) else (length, length)
    count = rng.randint(low, high) if high > low else low  # a fixed length draws exactly as before
    return "".join(rng.choice(alphabet) for _ in range(count))


def parse_length(text: str):
    """'5' -> 5; '4-8' -> (4, 8). The spelling of captcha.spec.parse_length, which this standalone
    script cannot import (the library it runs beside is also called captcha)."""
    low, _, high = str(text).partition("-")
    low, high = int(low), int(high or low)
    if not 1 <= low <= high:
        raise ValueError(f"length {text!r}: a number or a range like 4-8")
    return low if low == high else (low, high)


class _SeededSecrets:
    """Stands in for the ``secrets`` module inside ``captcha.image`` (captcha>=0.5).

    Same semantics as secrets.randbelow / secrets.randbits / secrets.choice, but
    drawing from the global ``random`` module, which is reseeded per image.
    Any other ``secrets`` function raises, so no unseeded randomness can slip in.
    """

    @staticmethod
    def randbelow(exclusive_upper_bound: int) -> int:
        if exclusive_upper_bound <= 0:
            raise ValueError("Upper bound must be positive.")
        return random.randrange(exclusive_upper_bound)

    @staticmethod
    def randbits(k: int) -> int:
        return random.getrandbits(k)

    @staticmethod
    def choice(seq):
        return random.choice(seq)

    def __getattr__(self, name):
        raise RuntimeError(f"captcha.image used secrets.{name}, which generate.py does not seed")


def _import_library():
    """Import the PyPI captcha library (not the project's package of the same name) and make it seedable."""
    try:
        import captcha
        import captcha.image as cimage
    except ImportError as exc:  # pragma: no cover - environment problem
        sys.exit(f"generate.py: cannot import the PyPI 'captcha' library ({exc}); run it from its own venv (see build.sh)")
    if not hasattr(captcha, "__version__") or not hasattr(cimage, "ImageCaptcha"):
        sys.exit(f"generate.py: 'captcha' resolves to {getattr(captcha, '__file__', '?')}, which is not the PyPI "
                 "captcha library (the project's own package has the same name); run from the recipe venv with python -I")
    # Refuse library versions that use randomness sources this script does not control.
    with open(cimage.__file__, encoding="utf-8") as f:
        source = f.read()
    for needle in ("urandom", "SystemRandom", "numpy", "uuid", "time.time"):
        if needle in source:
            sys.exit(f"generate.py: captcha {captcha.__version__} image.py uses '{needle}'; "
                     "determinism is not guaranteed, extend generate.py first")
    if hasattr(cimage, "secrets"):
        cimage.secrets = _SeededSecrets()
    return captcha, cimage


# ---- worker side -----------------------------------------------------------------------------

_GEN = None


def _init_worker(width: int, height: int) -> None:
    global _GEN
    _, cimage = _import_library()
    _GEN = cimage.ImageCaptcha(width=width, height=height)


def _render(task) -> int:
    index, seed, label, path = task
    random.seed(seed)
    image = _GEN.generate_image(label)
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{name}.part")
    image.save(tmp, format="PNG")
    os.replace(tmp, path)
    return index


# ---- main side -------------------------------------------------------------------------------

def plan(out_dir: str, count: int, base: int, alphabet: str, length: int, taken: set[str]):
    """[(index, seed, label, path)] for every image, names assigned in index order."""
    tasks = []
    for index in range(count):
        seed = image_seed(base, index)
        label = make_label(seed, alphabet, length)
        stem, k = label, 1
        while stem in taken:
            k += 1
            stem = f"{label}_{k}"
        taken.add(stem)
        tasks.append((index, seed, label, os.path.join(out_dir, stem + ".png")))
    return tasks


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out_dir")
    p.add_argument("--count", type=int, required=True, help="number of images")
    p.add_argument("--seed", type=int, required=True, help="seed base S (per-image seed = S*10_000_000 + i)")
    p.add_argument("--length", type=parse_length, default=5,
                   help="characters per label: a number (default 5) or a range like 4-8, drawn per image")
    p.add_argument("--alphabet", default=DEFAULT_ALPHABET, help="label characters (default: 0-9A-Za-z, 62 chars)")
    p.add_argument("--width", type=int, default=256)
    p.add_argument("--height", type=int, default=256)
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run of the same command (skip files that already exist)")
    p.add_argument("--summary-json", metavar="PATH", help="also write the summary as JSON to PATH")
    p.add_argument("--progress-every", type=int, default=5000, metavar="N", help="print progress every N images")
    args = p.parse_args(argv)
    if not 0 <= args.count <= SEED_STRIDE:
        p.error(f"--count must be between 0 and {SEED_STRIDE}")
    if args.seed < 0:
        p.error("--seed must be >= 0")
    if not args.alphabet or len(set(args.alphabet)) != len(args.alphabet):
        p.error("--alphabet must be non-empty with no repeated characters")
    bad = sorted(set(args.alphabet) & FORBIDDEN_LABEL_CHARS)
    if bad:
        p.error(f"--alphabet may not contain {bad!r} (file names are <label>[_N].png)")
    if args.workers < 1:
        p.error("--workers must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    captcha, _ = _import_library()
    import PIL

    os.makedirs(args.out_dir, exist_ok=True)
    existing = set()
    for name in os.listdir(args.out_dir):
        if name.startswith(TMP_PREFIX):
            os.remove(os.path.join(args.out_dir, name))  # leftovers of a killed run
        elif name.endswith(".png"):
            existing.add(name[:-4])

    tasks = plan(args.out_dir, args.count, args.seed, args.alphabet, args.length,
                 taken=set() if args.resume else set(existing))
    todo = [t for t in tasks if not (args.resume and os.path.exists(t[3]))]
    skipped = len(tasks) - len(todo)
    duplicates = sum(1 for t in tasks if os.path.basename(t[3])[:-4] != t[2])
    print(f"generate.py: captcha {captcha.__version__} (Pillow {PIL.__version__}, Python {platform.python_version()}) "
          f"-> {args.out_dir}: {len(todo)} to draw, {skipped} already there, seed base {args.seed}, "
          f"{args.workers} worker(s)", flush=True)

    start = time.monotonic()
    done = 0
    if todo:
        if args.workers == 1:
            _init_worker(args.width, args.height)
            results = map(_render, todo)
            pool = None
        else:
            pool = multiprocessing.get_context("fork").Pool(
                args.workers, initializer=_init_worker, initargs=(args.width, args.height))
            results = pool.imap_unordered(_render, todo, chunksize=32)
        try:
            for _ in results:
                done += 1
                if args.progress_every and done % args.progress_every == 0:
                    elapsed = time.monotonic() - start
                    print(f"  {done}/{len(todo)} images, {elapsed:.0f}s, {done / elapsed:.1f} img/s", flush=True)
        finally:
            if pool is not None:
                pool.close()
                pool.join()
    seconds = time.monotonic() - start

    summary = {
        "out_dir": os.path.abspath(args.out_dir),
        "count": args.count,
        "generated": done,
        "skipped_existing": skipped,
        "suffixed_duplicates": duplicates,
        "seconds": round(seconds, 2),
        "images_per_second": round(done / seconds, 2) if seconds > 0 and done else None,
        "seed_base": args.seed,
        "seed_formula": f"seed_i = {args.seed} * {SEED_STRIDE} + i",
        "length": args.length if isinstance(args.length, int) else "%d-%d" % args.length,
        "alphabet": args.alphabet,
        "width": args.width,
        "height": args.height,
        "captcha_version": captcha.__version__,
        "pillow_version": PIL.__version__,
        "python_version": platform.python_version(),
    }
    if args.summary_json:
        with open(args.summary_json, "w", encoding="utf-8") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    rate = f"{done / seconds:.1f} img/s" if seconds > 0 and done else "-"
    print(f"generate.py: done: {done} generated ({skipped} skipped, {duplicates} with _N suffix) in {seconds:.1f}s "
          f"({rate}); captcha {captcha.__version__}, Pillow {PIL.__version__}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
