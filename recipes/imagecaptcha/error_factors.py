#!/usr/bin/env python3
"""Which draws the models misread: per-character error rates by how ImageCaptcha drew the character.

Joins draw_params.py's record of every character of a held-out set (font size, rotation, warp,
paste opacity, what covers it) with `python -m captcha evaluate --json`'s misreadings, and prints
markdown tables: for each factor, how many characters fell in each bucket and how many of them were
misread, for all characters and for the case-pair characters alone. Standard library only.

    python recipes/imagecaptcha/error_factors.py --params ~/.cache/captcha/params-heldout-v03.jsonl \
        --eval ~/.cache/captcha/eval/heldout-v03.json [--form one_go]
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict

# Characters whose other case (or O/0) is drawn into the same box: see glyph_pairs.py.
PAIR_CHARS = set("vVxXzZcCoOsSuUwW0")

FACTORS = {
    "font size": lambda c: c["size"],
    "rotation |deg|": lambda c: bucket(abs(c["angle"]), [10, 20, 30]),
    "warp (mean corner shift / box)": lambda c: bucket(sum(c["warp_x"] + c["warp_y"]) / 4, [0.05, 0.1, 0.15, 1]),
    "paste opacity": lambda c: bucket(c["opacity"], [0.5, 0.75, 0.999, 1.0]),
    "ink covered by noise": lambda c: bucket(c["noise"], [0.0, 0.05, 0.15, 1]),
    "ink covered by neighbours": lambda c: bucket(c["neighbours"], [0.0, 0.1, 1]),
    "blank glyph before it": lambda c: c["space_before"],
}


def bucket(value: float, edges: list[float]) -> tuple[int, str]:
    """(order, label) of the first edge that `value` does not exceed: '0', '<= 10', '10-20', ..."""
    low = None
    for i, edge in enumerate(edges):
        if value <= edge:
            if low is None:
                return i, "0" if edge == 0 else f"<= {edge:g}"
            return i, f"{low:g}-{edge:g}"
        low = edge
    return len(edges), f"> {edges[-1]:g}"


def graded_chars(params: str, evaluation: str, form: str) -> list[tuple[dict, bool]]:
    """(draw_params.py's record of a character, whether `form` misread it) for every character of a set."""
    with open(evaluation) as f:
        graded = json.load(f)[form]
    misread = {e["file"]: e["read"] for e in graded["errors"]}
    chars = []
    with open(params) as f:
        for line in f:
            image = json.loads(line)
            read = misread.get(image["file"], image["label"])
            for k, c in enumerate(image["chars"]):
                chars.append((c, read[k] != c["c"]))
    if len(chars) != 5 * graded["count"]:
        raise SystemExit(f"error_factors.py: {len(chars)} characters in --params, {graded['count']} images graded")
    return chars


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--params", required=True, help="draw_params.py's JSON lines for the set")
    p.add_argument("--eval", required=True, help="python -m captcha evaluate --json output for the same set")
    p.add_argument("--form", default="one_go", choices=["one_go", "sequential"])
    args = p.parse_args()
    chars = graded_chars(args.params, args.eval, args.form)
    wrong = sum(w for _, w in chars)
    pairs = [(c, w) for c, w in chars if c["c"] in PAIR_CHARS]
    pair_wrong = sum(w for _, w in pairs)
    print(f"{args.form}: {wrong} of {len(chars)} characters misread; {pair_wrong} of them are among the "
          f"{len(pairs)} case-pair characters ({''.join(sorted(PAIR_CHARS))})\n")
    for name, key in FACTORS.items():
        counts = defaultdict(lambda: [0, 0, 0, 0])
        for c, w in chars:
            row = counts[key(c)]
            row[0] += 1
            row[1] += w
            if c["c"] in PAIR_CHARS:
                row[2] += 1
                row[3] += w
        print(f"| {name} | characters | misread | rate | pair characters | misread | rate |")
        print("|---|---|---|---|---|---|---|")
        for value in sorted(counts):
            n, e, pn, pe = counts[value]
            print(f"| {value[1] if isinstance(value, tuple) else value} | {n} | {e} | {100 * e / n:.2f}% | {pn} | {pe} | {100 * pe / max(1, pn):.2f}% |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
