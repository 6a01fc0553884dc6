"""Train on your own CAPTCHAs, measured: real public sets, a few hundred labels, minutes on this machine.

    python benchmarks/own_captchas.py                                  # every set, --minutes 20 each
    python benchmarks/own_captchas.py --sets henan swust/20191218 --minutes 5 --out /tmp/quick
    python benchmarks/own_captchas.py --ddddocr-python ~/venv-dddd/bin/python   # ddddocr beside us

For each set in ../shared/datasets (see its README) and two generated variable-length sets (our
generator's, and the PyPI captcha library's from its venv: --imagecaptcha-python), the
images are split by a hash of their file names: at most --train-max (1000) to train on, the rest
to score. Each split is a folder of links under --out (the images are never copied), labelled as
the set labels them (file names, or a labels.csv). Then, exactly as a user would:

    python train.py --data OUT/SET/train --out OUT/SET/run --minutes M
    python -m captcha evaluate OUT/SET/test --weights OUT/SET/run --json OUT/SET/eval.json

and ddddocr's default model reads the same test images with no training (from its own
environment: --ddddocr-python; labels folded to lower case when the set's are). Each set's row is
saved in OUT/results.json as soon as it is done, so a run cut short resumes where it stopped
(a set cut mid-training starts again). The table is written to OUT/own_captchas.md.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

from captcha.data import read_samples  # noqa: E402

DATASETS = ROOT.parent / "shared" / "datasets"
REAL_SETS = ["swust/20190121", "swust/20191218", "swust/20200226", "henan", "wordpress_rsc",
             "dotted_digits", "lzu_digits5"]
GENERATED = "generated_4-8"  # 4-8 characters of 0-9a-z, drawn by `python -m captcha synth`
IMAGECAPTCHA = "imagecaptcha_4-8"  # the same, drawn by the PyPI captcha library 0.7.1 (the Kaggle set's drawer)
GENERATED_SETS = (GENERATED, IMAGECAPTCHA)
IMAGECAPTCHA_PYTHON = Path.home() / ".cache" / "captcha" / "venvs" / "imagecaptcha-0.7.1" / "bin" / "python"
CASE_FOLDED = {"swust/20190121", "swust/20191218", "swust/20200226"}  # labels are lower case, glyphs are not

DDDDOCR = """
import json, sys, ddddocr
ocr = ddddocr.DdddOcr(show_ad=False)
for line in sys.stdin:
    path = line.rstrip("\\n")
    with open(path, "rb") as f:
        print(json.dumps({"file": path, "read": ocr.classification(f.read())}), flush=True)
"""


def cpu_kind() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor() or "unknown CPU")
    flags = Path("/proc/cpuinfo").read_text()
    native = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return f"{model}, {os.cpu_count()} cores, {'native bf16 (' + ', '.join(native) + ')' if native else 'no native bf16'}"


def commit() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
    return done.stdout.strip() or "unknown"


def order_key(path: Path) -> str:
    return hashlib.md5(path.name.encode()).hexdigest()


def link_split(name: str, source: Path, out: Path, train_max: int) -> tuple[int, int]:
    """OUT/train and OUT/test: links to at most train_max images and to the rest, labelled as in `source`."""
    samples, problems, _ = read_samples(source)
    if problems:
        raise SystemExit(f"{source}: {len(problems)} problem(s), first: {problems[0]}")
    samples = sorted(samples, key=lambda s: order_key(s.path))
    labels_file = (source / "labels.csv").is_file()
    for part, chunk in (("train", samples[:train_max]), ("test", samples[train_max:])):
        folder = out / part
        folder.mkdir(parents=True, exist_ok=True)
        lines = ["file,label"]
        for s in chunk:
            link = folder / s.path.relative_to(source)
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.is_symlink():
                link.symlink_to(s.path)
            lines.append(f"{s.path.relative_to(source)},{s.label}")
        if labels_file:
            (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return min(train_max, len(samples)), max(0, len(samples) - train_max)


def generate_set(name: str, out: Path, train_max: int, test_count: int, imagecaptcha_python: Path) -> tuple[int, int]:
    """OUT/train and OUT/test of a generated set: our own drawing code, or the PyPI captcha library
    from its venv (recipes/imagecaptcha/build.sh --venvs-only makes it)."""
    for part, count, seed in (("train", train_max, 0), ("test", test_count, 1)):
        folder = out / part
        if len(list(folder.glob("*.png"))) >= count:
            continue
        size = ["--alphabet", "0123456789abcdefghijklmnopqrstuvwxyz", "--length", "4-8", "--width", "256", "--height", "64"]
        if name == GENERATED:
            run([sys.executable, "-m", "captcha", "synth", str(folder), "--count", str(count), "--seed", str(seed), *size])
        else:  # seed bases 7000/7001: no image the shipped weights were trained on
            run([str(imagecaptcha_python), "-I", str(ROOT / "recipes" / "imagecaptcha" / "generate.py"), str(folder),
                 "--count", str(count), "--seed", str(7000 + seed), "--resume", *size])
    return train_max, test_count


def run(cmd, log: Path | None = None):
    print("$", " ".join(cmd), flush=True)
    if log is None:
        subprocess.run(cmd, check=True, cwd=ROOT)
        return
    with open(log, "w") as f:
        done = subprocess.run(cmd, cwd=ROOT, stdout=f, stderr=subprocess.STDOUT)
    if done.returncode:
        raise SystemExit(f"failed ({done.returncode}), see {log}")


def ddddocr_accuracy(python: str | None, test: Path, fold: bool, cache: Path) -> float | None:
    if not python:
        return None
    if not cache.exists():
        samples, _, _ = read_samples(test)
        done = subprocess.run([python, "-c", DDDDOCR], input="\n".join(str(s.path) for s in samples),
                              capture_output=True, text=True, check=True)
        reads = {json.loads(line)["file"]: json.loads(line)["read"] for line in done.stdout.splitlines()}
        rows = [{"file": str(s.path), "label": s.label, "read": reads.get(str(s.path), "")} for s in samples]
        cache.write_text(json.dumps(rows))
    rows = json.loads(cache.read_text())
    same = (lambda a, b: a.lower() == b.lower()) if fold else (lambda a, b: a == b)
    return sum(same(r["label"], r["read"]) for r in rows) / max(len(rows), 1)


def table(results: dict, cpu: str, minutes: float, dddd_note: str) -> str:
    lines = [f"Trained with `python train.py --data SET/train --out RUN --minutes {minutes:g}` (every other setting "
             f"auto), scored with `python -m captcha evaluate SET/test --weights RUN`, on {cpu}.", "",
             "| set | train labels | test images | one-go | sequential | CER one-go / sequential | ddddocr | "
             "ECE one-go / sequential / answer | answers sure (right) | minutes (wall) | settings chosen |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        dddd = "—" if r.get("ddddocr") is None else f"{r['ddddocr']:.1%}"
        ece = " / ".join(f"{r['ece'][f]:.1%}" for f in ("one_go", "sequential", "answer")) if r.get("ece") else "—"
        sure = (f"{r['sure']['share']:.1%} ({'—' if r['sure']['accuracy'] is None else format(r['sure']['accuracy'], '.1%')})"
                if r.get("sure") else "—")
        lines.append(f"| {name} | {r['train']} | {r['test']} | {r['one_go']:.1%} | {r['sequential']:.1%} | "
                     f"{r['cer_one_go']:.1%} / {r['cer_sequential']:.1%} | {dddd} | {ece} | {sure} | "
                     f"{r['minutes']:.1f} | {r['settings']} |")
    return "\n".join(lines + ["", dddd_note, ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=[*REAL_SETS, *GENERATED_SETS])
    p.add_argument("--minutes", type=float, default=20)
    p.add_argument("--train-max", type=int, default=1000, help="labels to train on per real set")
    p.add_argument("--generated-train", type=int, default=4000, help="labels of each generated variable-length set")
    p.add_argument("--out", type=Path, default=Path.home() / ".cache" / "captcha" / "own_captchas")
    p.add_argument("--ddddocr-python", help="a Python with ddddocr installed (its own venv); none: the column is skipped")
    p.add_argument("--imagecaptcha-python", type=Path, default=IMAGECAPTCHA_PYTHON,
                   help=f"the PyPI captcha library's venv, for {IMAGECAPTCHA} (missing: that set is skipped)")
    p.add_argument("--train-args", default="", help="more train.py options, for comparing strategies")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    cpu = cpu_kind()
    for name in args.sets:
        if name in results:
            print(f"{name}: done before, kept ({results_path})")
            continue
        folder = args.out / name.replace("/", "_")
        if name == IMAGECAPTCHA and not args.imagecaptcha_python.exists():
            print(f"{name}: skipped, no {args.imagecaptcha_python} (bash recipes/imagecaptcha/build.sh --venvs-only)")
            continue
        if name in GENERATED_SETS:
            n_train, n_test = generate_set(name, folder, args.generated_train, 1000, args.imagecaptcha_python)
        else:
            n_train, n_test = link_split(name, DATASETS / name, folder, args.train_max)
        run_dir = folder / "run"
        if run_dir.exists():  # cut short last time: start the set again
            subprocess.run(["rm", "-rf", str(run_dir)], check=True)
        t0 = time.monotonic()
        run([sys.executable, "train.py", "--data", str(folder / "train"), "--out", str(run_dir),
             "--minutes", str(args.minutes), *args.train_args.split()], log=folder / "train.log")
        minutes = (time.monotonic() - t0) / 60
        run([sys.executable, "-m", "captcha", "evaluate", str(folder / "test"), "--weights", str(run_dir),
             "--json", str(folder / "eval.json")], log=folder / "eval.log")
        ev = json.loads((folder / "eval.json").read_text())
        chosen = {line.split(" auto:")[0]: line.split(" auto:", 1)[1].split("(")[0].strip()
                  for line in (folder / "train.log").read_text().splitlines() if " auto: " in line}
        fold = name in CASE_FOLDED or name in GENERATED_SETS
        results[name] = {
            "train": n_train, "test": n_test, "minutes": minutes, "settings": f"length {chosen.get('length', 'given')}, input {chosen.get('size', 'given')}"
                        + (", form joint" if chosen.get("form", "").startswith("joint") else ""),
            **{form: ev[form]["string_accuracy"] for form in ("one_go", "sequential")},
            **{f"cer_{form}": ev[form]["cer"] for form in ("one_go", "sequential")},
            "ece": {form: ev[form]["trust"]["ece"] for form in ("one_go", "sequential", "answer")},
            "sure": ev["answer"]["sure"],  # the answers called sure (calibrated on train.py's validation split)
            "ddddocr": ddddocr_accuracy(args.ddddocr_python, folder / "test", fold, folder / "ddddocr.json"),
            "cpu": cpu, "train_args": args.train_args, "commit": commit(),  # which train.py made the row
        }
        results_path.write_text(json.dumps(results, indent=2))
        print(f"{name}: one-go {results[name]['one_go']:.1%}, sequential {results[name]['sequential']:.1%}", flush=True)
    note = ("ddddocr: `DdddOcr(show_ad=False).classification` (its default model), no training; compared in lower "
            f"case on {', '.join(sorted(CASE_FOLDED | set(GENERATED_SETS)))}, whose labels are lower case." if args.ddddocr_python
            else "ddddocr: not run (give --ddddocr-python).")
    (args.out / "own_captchas.md").write_text(table(results, cpu, args.minutes, note))
    print((args.out / "own_captchas.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
