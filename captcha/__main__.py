"""Command line: python -m captcha {predict,evaluate,calibrate,synth,clean,bench,push} ... (see --help)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .errors import CaptchaError
from .spec import DEFAULT_ALPHABET, DEFAULT_LENGTH, CaptchaSpec

DEFAULT_WEIGHTS = str(Path(__file__).resolve().parent.parent / "weights")
UNREADABLE, UNSURE = 1, 3  # predict's exit codes: a file could not be read; (--fail-unsure) an answer is unsure


def _recognizer(args):
    from .recognizer import Recognizer, set_threads
    set_threads(getattr(args, "threads", None))
    return Recognizer.from_pretrained(args.weights, precision=args.precision, engine=args.engine,
                                      min_confidence=getattr(args, "min_confidence", None),
                                      second_look=getattr(args, "second_look", False))


def cmd_predict(args) -> int:
    from .errors import ImageError
    rec = _recognizer(args)
    if args.fail_unsure and rec.threshold() is None:
        raise CaptchaError(f"{args.weights}: these weights carry no calibration, so no answer can be called "
                           f"unsure; give --min-confidence P, or fit one with python -m captcha calibrate")
    failed = unsure = 0
    for file in args.files:
        try:
            prediction = rec.predict(file)
        except ImageError as e:
            print(json.dumps({"file": file, "error": str(e)}, ensure_ascii=False), flush=True)
            failed += 1
            continue
        row = {"file": file, **prediction.to_dict()}
        if prediction.answer.sure is False:
            row = {"file": file, "unsure": True, **prediction.to_dict()}  # marked up front, for grep and eyes
            unsure += 1
        print(json.dumps(row, ensure_ascii=False), flush=True)
    if unsure:
        print(f"{unsure} of {len(args.files)} answer(s) unsure (below the confidence threshold)", file=sys.stderr)
    return UNREADABLE if failed else UNSURE if unsure and args.fail_unsure else 0


def cmd_evaluate(args) -> int:
    from .data import scan_folder
    from .evaluate import evaluate
    rec = _recognizer(args)
    spec = CaptchaSpec(args.alphabet or rec.spec.alphabet, args.length or str(rec.spec.lengths))
    rec.check_alphabet(spec)
    fold = args.case_insensitive or any(i.summary.get("case_insensitive") for i in rec.infos.values())
    samples = scan_folder(args.folder, spec, skip_invalid=args.skip_invalid, warn=lambda m: print(m, file=sys.stderr),
                          labels=args.labels, pattern=args.label_pattern, fold_case=fold)
    if args.limit:
        samples = samples[: args.limit]
    results = evaluate(rec, samples, batch_size=args.batch_size, fold_case=fold, min_confidence=args.min_confidence)
    if args.json:
        Path(args.json).write_text(json.dumps({"folder": str(args.folder), "weights": str(args.weights), **results},
                                              indent=2, ensure_ascii=False, default=str))
    agreement = results.pop("agreement", None)
    print(f"{len(samples)} images from {args.folder}, weights {args.weights}"
          f"{' (labels and readings compared in lower case)' if fold else ''}\n")
    print("| form | full-string | character error rate | per-character | case-insensitive | errors |")
    print("|---|---|---|---|---|---|")
    for form, r in results.items():
        print(f"| {form} | {r['string_accuracy']:.2%} | {r['cer']:.2%} | {r['char_accuracy']:.2%} | "
              f"{r['case_insensitive_accuracy']:.2%} | {len(r['errors'])} |")
    if spec.variable or any(len(r["by_length"]) > 1 for r in results.values()):
        lengths = sorted({n for r in results.values() for n in r["by_length"]})
        print(f"\nfull-string by label length\n\n| form | " + " | ".join(f"{n} ({next(iter(results.values()))['by_length'][n]['count']})"
                                                                     for n in lengths) + " |")
        print("|---|" + "---|" * len(lengths))
        for form, r in results.items():
            print(f"| {form} | " + " | ".join(f"{r['by_length'][n]['string_accuracy']:.2%}" for n in lengths) + " |")
    for form, r in results.items():
        pairs = ", ".join(f"{c['truth']}->{c['read']} ({c['count']})" for c in r["confusions"][: args.top])
        print(f"\n{form} most frequent confusions (truth->read): {pairs or 'none'}")
    print_trust(results, agreement, rec)
    if args.plot:
        from .plots import draw
        print(f"\nreliability diagram and risk-coverage curve: {draw(results, args.plot, Path(args.folder).name)}")
    return 0


def print_trust(results: dict, agreement: dict | None, rec) -> None:
    """How far to trust the confidences: calibration, risk-coverage, thresholds, sure, agreement."""
    note = "" if rec.calibrated else " (these weights carry no calibration: run python -m captcha calibrate)"
    print(f"\nconfidence (full-string: the whole reading right or not; ECE over 10 equal bins, 95% interval){note}\n")
    shares = [row["coverage"] for row in next(iter(results.values()))["trust"]["risk_coverage"]]
    print("| reading | ECE | mean confidence | accuracy | " + " | ".join(f"keep {c:.0%}" for c in shares)
          + " | threshold for 99% (kept) | for 99.5% (kept) | sure: share (accuracy) |")
    print("|---|---|---|---|" + "---|" * len(shares) + "---|---|---|")
    for form, r in results.items():
        t, sure = r["trust"], r["sure"]
        cells = [f"{t['ece']:.2%} [{t['ece_interval'][0]:.2%}, {t['ece_interval'][1]:.2%}]",
                 f"{t['mean_confidence']:.2%}", f"{t['accuracy']:.2%}",
                 *(f"{row['accuracy']:.2%}" for row in t["risk_coverage"])]
        for a in ("0.99", "0.995"):
            th = t["thresholds"][a]
            cells.append(f"{th['threshold']:.4f} ({th['coverage']:.1%})" if th else "not reached")
        cells.append("no threshold" if sure is None else
                     f"{sure['share']:.1%} ({'-' if sure['accuracy'] is None else format(sure['accuracy'], '.2%')})")
        print(f"| {form} | " + " | ".join(cells) + " |")
    if agreement:
        a = agreement
        fmt = lambda v: "-" if v is None else f"{v:.2%}"
        print(f"\nthe forms agree on {a['share_agree']:.2%} of images; the answer is right {fmt(a['accuracy_agree'])} "
              f"of the time when they agree, {fmt(a['accuracy_disagree'])} when they do not. Kept at 99.5% "
              f"accuracy: {a['coverage_995_by_confidence']:.1%} ranking answers by confidence, "
              f"{a['coverage_995_agreeing_first']:.1%} ranking agreeing answers first.")


def cmd_calibrate(args) -> int:
    from .calibration import calibrate
    from .data import scan_folder
    rec = _recognizer(args)
    fold = any(i.summary.get("case_insensitive") for i in rec.infos.values())
    samples, groups = [], []
    for folder in args.folders:
        samples += scan_folder(folder, rec.spec, skip_invalid=args.skip_invalid, labels=args.labels,
                               pattern=args.label_pattern, fold_case=fold, warn=lambda m: print(m, file=sys.stderr))
        groups += [str(folder)] * (len(samples) - len(groups))
    if not samples:
        raise CaptchaError(f"{' '.join(map(str, args.folders))}: no labelled images to calibrate on")
    source = f"{len(samples)} images from {', '.join(Path(f).name for f in args.folders)}"
    result = calibrate(rec, samples, accuracy=args.accuracy, source=source, groups=groups)
    print(f"calibrated on {source}; written to the weights' metadata (tensors unchanged)"
          + ("; each threshold is the strictest of the folders'" if len(args.folders) > 1 else "") + "\n")
    print("| form | temperature | ECE before | ECE after | errors | threshold for "
          f"{args.accuracy:.1%} | answer threshold |")
    print("|---|---|---|---|---|---|---|")
    for form, c in result.items():
        print(f"| {form} | {c['temperature']:.4f} | {c['ece_before']:.2%} | {c['ece_after']:.2%} | "
              f"{c['errors']}/{c['count']} | {c['threshold']:.4f} | {c['answer_threshold']:.4f} |")
    return 0


def cmd_quantize(args) -> int:
    from .data import scan_folder
    from .int8 import MIN_CHECK_IMAGES, quantize, split
    from .recognizer import Recognizer, set_threads
    set_threads(args.threads)
    rec = Recognizer.from_pretrained(args.weights, precision="fp32", engine="onnx")
    fold = any(i.summary.get("case_insensitive") for i in rec.infos.values())
    samples = [s for folder in args.data for s in scan_folder(
        folder, rec.spec, skip_invalid=args.skip_invalid, labels=args.labels, pattern=args.label_pattern,
        fold_case=fold, warn=lambda m: print(m, file=sys.stderr))]
    need = args.calibrate + MIN_CHECK_IMAGES
    if len(samples) < need:
        raise CaptchaError(f"{' '.join(map(str, args.data))}: {len(samples)} labelled images; the int8 trunk needs {need} "
                           f"({args.calibrate} to calibrate, {MIN_CHECK_IMAGES} others to check it): add images "
                           f"of the weights' own style, or lower --calibrate")
    record = quantize(rec, *split(samples, args.calibrate))
    check = record["check"]
    print(f"int8 trunk calibrated on {args.calibrate} images, checked on {check['images']} others: readings agree "
          f"with fp32 on {check['agreement']:.2%} ({check['agreement_without_rereads']:.2%} before re-reading in fp32 "
          f"the {check['reread_share']:.1%} read below {check['reread_below']:.0%}); answer accuracy {check['accuracy']['fp32']:.2%} fp32, "
          f"{check['accuracy']['int8']:.2%} int8; answer ECE {check['ece_fp32']:.2%} -> {check['ece_int8']:.2%}")
    if not check["passed"]:
        print(f"not used: {check['why']}; --engine auto keeps to fp32", file=sys.stderr)
        return 1
    print(f"stored in {', '.join(str(i.path) for i in rec.infos.values())} (ranges only; tensors unchanged); "
          f"--engine auto uses it where it is faster, --engine onnx-int8 always")
    return 0


def cmd_synth(args) -> int:
    from .synth import find_fonts, write_folder
    fonts = find_fonts(args.fonts) if args.fonts else None
    paths = write_folder(args.out, args.count, seed=args.seed, alphabet=args.alphabet, length=args.length,
                         width=args.width, height=args.height, fonts=fonts)
    print(f"wrote {len(paths)} CAPTCHAs to {args.out}")
    return 0


def cmd_clean(args) -> int:
    from .clean import clean
    report = clean(args.folder, CaptchaSpec(args.alphabet, args.length), delete=args.delete, dry_run=args.dry_run)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 0
    verb = "would move" if args.dry_run else ("deleted" if args.delete else f"moved to {report.moved_to}")
    print(f"scanned {report.scanned} images in {args.folder}: {report.ok} decode, {len(report.corrupted)} corrupted")
    for name, reason in report.corrupted:
        print(f"  corrupted ({verb}): {name}: {reason}")
    if report.bad_names:
        print(f"{len(report.bad_names)} file(s) decode but are not named by a valid label "
              f"({args.length} characters of {args.alphabet!r}); rename or skip them (train.py --skip-invalid):")
        for name, reason in report.bad_names[:50]:
            print(f"  {name}: {reason}")
    return 0


def cmd_bench(args) -> int:
    from .bench import bench, encode, train_throughput
    from .data import list_images
    from .images import open_image
    from .recognizer import set_threads
    from .synth import generate
    if args.train:  # training speed of fresh models: no weights needed
        set_threads(args.threads)
        height, width = (int(v) for v in (args.size.split("x") * 2)[:2])
        crop = tuple(float(v) for v in args.crop.split(","))
        spec = CaptchaSpec(args.alphabet, args.length, height, width, crop)
        rows = {f"{form} {p}": round(train_throughput(form, spec, args.arch, p == "bf16", args.batch_size), 1)
                for form in ("one_go", "sequential", "joint") for p in ("fp32", "bf16")}
        print(json.dumps({"arch": args.arch, "input_hxw": f"{height}x{width}", "batch_size": args.batch_size,
                          "threads": set_threads(None), "images_per_s": rows}, indent=2))
        return 0
    rec = _recognizer(args)
    if args.image and Path(args.image).is_dir():
        files = list_images(args.image)[:args.images]
        if not files:
            raise CaptchaError(f"{args.image}: no images to time; pass a folder of CAPTCHAs or one image file")
        images = [open_image(p) for p in files]
    else:
        images = [open_image(args.image) if args.image else generate("aB3xY", seed=0)]
    encoded = [encode(im) for im in images]
    result = bench(rec, encoded, runs=args.runs, batch_size=args.batch_size)
    if args.engine == "auto" and args.precision == "auto":  # every engine, unless one was asked for
        from .bench import compare
        result["compare"] = compare(rec, encoded, runs=args.runs, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    s = result["single_image"]
    print(f"forms: {', '.join(result['forms'])} ({result['precision']}, {result['engine']}, {result['threads']} threads, "
          f"input HxW {result['input_hxw']})")
    print(f"single image, all forms: p50 {s['p50_ms']} ms, p95 {s['p95_ms']} ms over {s['runs']} runs")
    print(f"batch of {result['batch']['batch_size']}: {result['batch']['images_per_s']} images/s")
    if "compare" in result:
        c = result["compare"]
        print(f"\nevery engine, this run (single image from its PNG bytes, decode included; reference: the plain "
              f"PyTorch fp32 trunk, batch 1, {c['threads']} threads: {c['reference_ms']} ms)\n")
        print("| engine | p50 ms | p95 ms | x reference | batch images/s | batch ms/image: decode, preprocess, "
              "model (trunk and heads), readings, re-reads (share) |\n|---|---|---|---|---|---|")
        for name, row in c["engines"].items():
            if "error" in row:
                print(f"| {name} | not run: {row['error']} | | | | |")
            else:
                st = row["batch_ms_per_image"]
                print(f"| {name} | {row['single_image']['p50_ms']} | {row['single_image']['p95_ms']} | "
                      f"{row['ratio_to_reference']} | {row['batch']['images_per_s']} | "
                      f"{st['decode']}, {st['preprocess']}, {st['model']}, {st['readings']}, {st['rereads']} ({st['reread_share']:.0%}) |")
    return 0


def cmd_push(args) -> int:
    from .hub import plan, push
    upload = plan(args.repo_id, space=args.space, weights=args.weights)
    if args.dry_run:
        print(upload.listing() + "\ndry run: nothing was uploaded")
        for problem in upload.problems():
            print(f"warning: {problem}", file=sys.stderr)
        return 0
    if problems := upload.problems():
        raise CaptchaError("refusing to push: " + "; ".join(problems))
    print(f"pushed to {push(upload, private=args.private)}")
    return 0


def length_option(value: str) -> str:
    """argparse type of --length: N or MIN-MAX, checked, kept as written."""
    from .spec import parse_length
    try:
        parse_length(value)
    except CaptchaError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def probability(value: str) -> float:
    """argparse type: a number from 0 to 1."""
    try:
        p = float(value)
    except ValueError:
        p = -1.0
    if not 0 <= p <= 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a probability from 0 to 1 (e.g. 0.95)")
    return p


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m captcha", description="Read, grade, generate and clean text CAPTCHAs.")
    sub = p.add_subparsers(dest="command", required=True)

    def model_options(q):
        q.add_argument("--weights", default=DEFAULT_WEIGHTS,
                       help="weights folder, .safetensors file or Hub repo id user/name (default: the shipped weights/)")
        q.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
        q.add_argument("--engine", default="auto", choices=["auto", "torch", "onnx", "onnx-int8"],
                       help="what runs the trunk (auto: ONNX Runtime for fp32 when installed, PyTorch for bf16; "
                            "then the weights' int8 trunk if it passed its check and is faster here)")
        q.add_argument("--threads", type=int, help="torch CPU threads")

    def confidence_option(q):
        q.add_argument("--min-confidence", type=probability, metavar="P",
                       help="confidence an answer needs to be sure (default: the threshold for 99%% accuracy "
                            "stored with the weights by calibration)")
        q.add_argument("--second-look", action="store_true",
                       help="read an image whose answer is below 99%% sure again through three slightly moved "
                            "boxes and average the readings: more accurate, slower on doubtful images")

    def spec_options(q, required=True):
        q.add_argument("--alphabet", default=DEFAULT_ALPHABET if required else None,
                       help="characters a CAPTCHA may contain" + ("" if required else " (default: the weights')"))
        q.add_argument("--length", type=length_option, default=str(DEFAULT_LENGTH) if required else None,
                       help="characters per CAPTCHA: N or a range MIN-MAX, e.g. 4-8" + ("" if required else
                                                                                         " (default: the weights')"))

    def label_options(q):
        q.add_argument("--labels", type=Path, help="a labels file (file,label lines), if not labels.csv/.tsv/.txt in the folder")
        q.add_argument("--label-pattern", metavar="REGEX", help="label = the regex's group 'label' (or first group) "
                       "of each file name without its extension")
        q.add_argument("--case-insensitive", action="store_true", help="compare labels and readings in lower case")

    q = sub.add_parser("predict", help="read images; one JSON line per file (\"unsure\": true marks an "
                                        "answer below the confidence threshold)")
    q.add_argument("files", nargs="+")
    model_options(q)
    confidence_option(q)
    q.add_argument("--fail-unsure", action="store_true",
                   help=f"exit {UNSURE} when any answer is unsure (exit {UNREADABLE} still means a file could not be read)")
    q.set_defaults(func=cmd_predict)

    q = sub.add_parser("evaluate", help="accuracy of both forms on labelled images (names or a labels file)")
    q.add_argument("folder", type=Path)
    model_options(q)
    spec_options(q, required=False)
    q.add_argument("--json", metavar="FILE", help="also write full results (incl. every error) as JSON")
    q.add_argument("--limit", type=int, help="only the first N images")
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--top", type=int, default=10, help="confusions to list")
    q.add_argument("--skip-invalid", action="store_true")
    q.add_argument("--plot", metavar="FILE.png", help="draw the reliability diagram and risk-coverage curve")
    confidence_option(q)
    label_options(q)
    q.set_defaults(func=cmd_evaluate)

    q = sub.add_parser("calibrate", help="fit the weights' confidence calibration on labelled images "
                                         "(not used in training) and store it in their metadata")
    q.add_argument("folders", nargs="+", type=Path)
    model_options(q)
    q.add_argument("--accuracy", type=probability, default=0.99,
                   help="accuracy the stored threshold for 'sure' aims at (default 0.99)")
    q.add_argument("--skip-invalid", action="store_true")
    q.add_argument("--labels", type=Path, help="a labels file, if not labels.csv/.tsv/.txt in the folder")
    q.add_argument("--label-pattern", metavar="REGEX", help="as for evaluate")
    q.set_defaults(func=cmd_calibrate)

    q = sub.add_parser("quantize", help="make and check the weights' int8 trunk from labelled images of their style")
    q.add_argument("--weights", default=DEFAULT_WEIGHTS, help="weights folder (default: the shipped weights/)")
    q.add_argument("--data", type=Path, nargs="+", required=True,
                   help="folders of labelled images of the weights' style, not trained on")
    q.add_argument("--calibrate", type=int, default=300, help="images to measure activation ranges on (default 300); "
                   "at least 500 others check it")
    q.add_argument("--threads", type=int)
    q.add_argument("--skip-invalid", action="store_true")
    q.add_argument("--labels", type=Path)
    q.add_argument("--label-pattern", metavar="REGEX")
    q.set_defaults(func=cmd_quantize)

    q = sub.add_parser("synth", help="write generated CAPTCHAs named by their answers")
    q.add_argument("out", type=Path)
    q.add_argument("--count", type=int, default=100)
    q.add_argument("--seed", type=int, default=0)
    spec_options(q)
    q.add_argument("--width", type=int, default=256)
    q.add_argument("--height", type=int, default=256)
    q.add_argument("--fonts", nargs="+", help="TTF files or folders (default: DejaVu, else Pillow's own)")
    q.set_defaults(func=cmd_synth)

    q = sub.add_parser("clean", help="move images that fail to decode into DIR/_corrupted/")
    q.add_argument("folder", type=Path)
    spec_options(q)
    q.add_argument("--delete", action="store_true", help="delete corrupted files instead of moving them")
    q.add_argument("--dry-run", action="store_true", help="report only")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_clean)

    q = sub.add_parser("bench", help="single-image latency (p50/p95) and batch throughput on this machine: "
                                     "what auto picks, then every engine side by side against plain PyTorch "
                                     "(only the one asked for with --engine/--precision)")
    model_options(q)
    q.add_argument("--image", help="an image, or a folder of them read in turn (default: a generated one)")
    q.add_argument("--images", type=int, default=256, help="with a folder: how many of its images (default 256)")
    q.add_argument("--runs", type=int, default=50)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--json", action="store_true")
    q.add_argument("--train", action="store_true",
                   help="measure training images/s of fresh models instead (fp32 vs bf16, both forms)")
    q.add_argument("--arch", default="resnet50", help="with --train")
    q.add_argument("--size", default="128", help="with --train: N or HxW")
    q.add_argument("--crop", default="0,0,1,1", help="with --train")
    spec_options(q)
    q.set_defaults(func=cmd_bench)

    q = sub.add_parser("push", help="upload the weights as a Hub model repo, or the app as a Gradio Space")
    q.add_argument("--repo-id", required=True, help="user/name (or org/name) on the Hugging Face Hub")
    q.add_argument("--space", action="store_true",
                   help="push the app (app.py, streamlit_app.py, captcha/, weights/, data/, ...) as a Gradio Space")
    q.add_argument("--weights", type=Path, default=Path(DEFAULT_WEIGHTS),
                   help="weights folder for a model repo (a Space takes this checkout's weights/)")
    q.add_argument("--private", action="store_true", help="create the repo private")
    q.add_argument("--dry-run", action="store_true", help="list what would be uploaded, and where; upload nothing")
    q.set_defaults(func=cmd_push)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CaptchaError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, NotADirectoryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
