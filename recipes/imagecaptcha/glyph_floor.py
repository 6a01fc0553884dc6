#!/usr/bin/env python3
"""How well can one glyph alone be read? A dedicated reader trained on glyphs.py's isolated draws.

The shipped models misread about 3.5% of captcha 0.3 strings, nearly all of them inside the pairs that
ImageCaptcha draws into the same box (O/0/o, v/V, x/X, z/Z, ...). Either the models have not learned
the cue yet, or the cue is not there in some draws. This script trains a small CNN on single glyphs,
drawn by the library itself with no noise, neighbours, colour or squeeze (an easier task than the
finished CAPTCHA), with fresh draws for every training example, then reports its errors on glyphs
drawn with other seeds, by character and font size, beside the shipped model's errors on the same
characters in a held-out set (from draw_params.py and `python -m captcha evaluate --json`).

    python recipes/imagecaptcha/glyph_floor.py --train ~/.cache/captcha/glyphs/train-a ~/.cache/captcha/glyphs/train-b \
        --test ~/.cache/captcha/glyphs/test --epochs 2 --out ~/.cache/captcha/glyphs/floor.json \
        [--params ~/.cache/captcha/params-heldout-v03.jsonl --eval ~/.cache/captcha/eval/heldout-v03.json]

Its errors are an upper bound on the glyph's ambiguity (a better reader could do better), so only
one conclusion is safe: where this reader errs about as often as the shipped model, more training of
the same kind is unlikely to help much; where it errs far less, the shipped model has room to learn.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import Counter, defaultdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from error_factors import graded_chars  # the same join of draw_params.py's records with evaluate --json

H, W = 64, 48  # glyphs.py's canvas


def load(prefix: str):
    """(pixels uint8 [N, 64, 48], chars list, font sizes int array) of one glyphs.py output."""
    pixels = np.fromfile(prefix + ".u8", np.uint8).reshape(-1, H, W)
    with open(prefix + ".txt") as f:
        rows = [line.split() for line in f]
    if len(rows) != len(pixels):
        raise SystemExit(f"glyph_floor.py: {prefix}: {len(pixels)} glyphs but {len(rows)} labels")
    return pixels, [c for c, _ in rows], np.array([int(s) for _, s in rows])


def conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class GlyphNet(nn.Module):
    """A small CNN at the glyph's resolution: a strided 5x5 stem, three stages, and a linear head over
    the whole 8x6 feature map (not a global pool: where the strokes are, and how far apart, is the cue)."""

    def __init__(self, classes: int, width: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 5, stride=2, padding=2, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True),  # 32 x 24
            conv(w, w), nn.MaxPool2d(2),                              # 16 x 12
            conv(w, 2 * w), conv(2 * w, 2 * w), nn.MaxPool2d(2),      # 8 x 6
            conv(2 * w, 4 * w), conv(4 * w, 4 * w),
        )
        self.head = nn.Linear(4 * w * (H // 8) * (W // 8), classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def to_input(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(pixels).float().div_(255).unsqueeze(1).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict(model, pixels, size=1024):
    model.eval()
    out = [model(to_input(pixels[i:i + size])).argmax(1) for i in range(0, len(pixels), size)]
    model.train()
    return torch.cat(out).numpy()


def shipped_errors(params: str, evaluation: str, form: str, classes: str):
    """{(char, size): [count, misread]} for the shipped model on a held-out set, these classes only."""
    table = defaultdict(lambda: [0, 0])
    for c, wrong in graded_chars(params, evaluation, form):
        if c["c"] in classes:
            row = table[(c["c"], c["size"])]
            row[0] += 1
            row[1] += wrong
    return table


def implied_accuracy(params: str, rates: dict) -> float:
    """Full-string accuracy on a held-out set if each character were misread at the glyph reader's rate
    for its (char, font size), independently, and characters outside its classes never were."""
    total, count = 0.0, 0
    with open(params) as f:
        for line in f:
            p = 1.0
            for c in json.loads(line)["chars"]:
                p *= 1.0 - rates.get((c["c"], c["size"]), 0.0)
            total, count = total + p, count + 1
    return total / count


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train", nargs="+", required=True, help="glyphs.py output prefixes to train on")
    p.add_argument("--test", required=True, help="glyphs.py output prefix drawn with another seed base")
    p.add_argument("--classes", help="train and test on these characters only (default: all in --train)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--limit", type=int, default=0, help="train on the first N glyphs only (learning curve)")
    p.add_argument("--eval-every", type=int, default=500, help="steps between test evaluations")
    p.add_argument("--params", help="draw_params.py JSON lines of a held-out set, to set the shipped model beside it")
    p.add_argument("--eval", help="python -m captcha evaluate --json output of that set")
    p.add_argument("--out", required=True, help="JSON report to write")
    args = p.parse_args()
    torch.manual_seed(0)

    parts = [load(prefix) for prefix in args.train]
    chars = [c for _, cs, _ in parts for c in cs]
    classes = args.classes or "".join(sorted(set(chars), key=chars.index))
    index = {c: i for i, c in enumerate(classes)}
    keep = np.array([c in index for c in chars])
    pixels = np.concatenate([x for x, _, _ in parts])[keep]
    labels = np.array([index[c] for c in chars if c in index], np.int64)
    if args.limit:
        pixels, labels = pixels[:args.limit], labels[:args.limit]
    test_pixels, test_chars, test_sizes = load(args.test)
    keep = np.array([c in index for c in test_chars])
    test_pixels, test_sizes = test_pixels[keep], test_sizes[keep]
    test_labels = np.array([index[c] for c in test_chars if c in index])

    model = GlyphNet(len(classes), args.width).to(memory_format=torch.channels_last)
    steps = math.ceil(args.epochs * len(pixels) / args.batch)
    if steps < 4:
        raise SystemExit(f"glyph_floor.py: {steps} training step(s); a one-cycle schedule needs at least 4")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    # warm up over a tenth of the run, but at least two steps (OneCycleLR divides by the warm-up length)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=max(0.1, 2 / steps))
    print(f"glyph_floor.py: {len(pixels)} training glyphs of {classes!r}, {steps} steps of {args.batch}", flush=True)
    curve, step, start, gen = [], 0, time.time(), torch.Generator().manual_seed(0)
    while step < steps:
        order = torch.randperm(len(pixels), generator=gen).numpy()
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            loss = F.cross_entropy(model(to_input(pixels[idx])), torch.from_numpy(labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % args.eval_every == 0 or step == steps:
                err = float((predict(model, test_pixels) != test_labels).mean())
                curve.append({"step": step, "seen": step * args.batch, "loss": round(loss.item(), 4), "test_error": round(err, 5)})
                print(f"step {step}/{steps} seen {step * args.batch} loss {loss.item():.4f} test error {100 * err:.2f}% "
                      f"({(step * args.batch) / (time.time() - start):.0f} glyphs/s)", flush=True)
            if step == steps:
                break

    pred = predict(model, test_pixels)
    per = defaultdict(lambda: [0, 0])
    confusions = Counter()
    for truth, guess, size in zip(test_labels, pred, test_sizes):
        per[(classes[truth], int(size))][0] += 1
        if truth != guess:
            per[(classes[truth], int(size))][1] += 1
            confusions[f"{classes[truth]}->{classes[guess]}"] += 1
    report = {"classes": classes, "train_glyphs": int(len(pixels)), "test_glyphs": int(len(test_pixels)),
              "epochs": args.epochs, "width": args.width, "seconds": round(time.time() - start),
              "test_error": float((pred != test_labels).mean()), "curve": curve,
              "per_char_size": {f"{c} {s}": v for (c, s), v in sorted(per.items())},
              "confusions": dict(confusions.most_common(30))}
    shipped = None
    if args.params and args.eval:
        shipped = {}
        for form in ("one_go", "sequential"):
            table = shipped_errors(args.params, args.eval, form, classes)
            shipped[form] = {f"{c} {s}": v for (c, s), v in sorted(table.items())}
        report["shipped"] = shipped
        rates = {key: e / n for key, (n, e) in per.items()}
        report["implied_full_string"] = implied_accuracy(args.params, rates)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)

    print(f"\ntest error {100 * report['test_error']:.2f}% on {len(test_pixels)} glyphs; confusions: "
          + ", ".join(f"{k} {v}" for k, v in confusions.most_common(12)))
    print("\n| char | size | glyph reader: glyphs | misread | rate |" + (" shipped one-go: chars | misread | rate |" if shipped else ""))
    print("|---|---|---|---|---|" + ("---|---|---|" if shipped else ""))
    for (c, s), (n, e) in sorted(per.items(), key=lambda kv: (classes.index(kv[0][0]), kv[0][1])):
        row = f"| {c} | {s} | {n} | {e} | {100 * e / n:.2f}% |"
        if shipped:
            sn, se = shipped["one_go"].get(f"{c} {s}", [0, 0])
            row += f" {sn} | {se} | {100 * se / max(1, sn):.1f}% |"
        print(row)
    if shipped:
        print(f"\nimplied full-string accuracy on {args.params}: {100 * report['implied_full_string']:.2f}% "
              "(each character misread at this reader's rate for its char and size, all others read)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
