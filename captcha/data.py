"""Where training images and labels come from: a folder of images with their answers, or the generator.

Labels come from, in this order:
- a labels file: `--labels FILE`, else `labels.csv`, `labels.tsv` or `labels.txt` in the folder.
  One image per line, `file,label` (or tab-separated; `.txt` may also use spaces), a header
  line optional, paths relative to the labels file (nested folders are fine);
- the file names, with one rule for the whole folder: the name before its extension, less one
  trailing repeat or hash suffix, that is a `_`, `-` or `.` followed by digits or by a hex hash of
  8 or more characters: `abc12.png`, `abc12_2.png`, `abc12-2.png`, `1234.1.png` and
  `abc12_<md5>.jpg` are all "abc12" (or "1234"). A name that is itself a valid label for the
  alphabet in use (its separator is a character of the alphabet) is kept whole;
- `--label-pattern REGEX` for names that do not fit: matched against the name without its
  extension, the label is the group named `label` (or the first group).

Every problem of a source is gathered and refused in one message that names the files, and
nothing is renamed, moved or written.
"""
from __future__ import annotations

import csv
import io
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from . import synth
from .errors import DatasetError, ImageError, LabelError
from .images import IMAGE_EXTENSIONS, open_image
from .spec import CaptchaSpec

SUFFIX = re.compile(r"^(?P<label>.+)[_.\-](?:\d+|[0-9a-fA-F]{8,})$")
LABEL_FILES = ("labels.csv", "labels.tsv", "labels.txt")
HEADER_WORDS = {"file", "filename", "file_name", "path", "image", "img", "image_path", "name",
                "label", "labels", "text", "answer", "code", "captcha", "value"}
SKIPPED_FOLDERS = ("_corrupted",)
SHOWN = 20  # offending files listed in one message


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


def listing(problems: list[str]) -> str:
    shown = "\n  ".join(problems[:SHOWN])
    more = f"\n  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    return f"  {shown}{more}"


def label_from_name(name: str, spec: CaptchaSpec | None = None, pattern: str | None = None) -> str:
    """The answer a file name encodes (see the module docstring); raises LabelError saying why if
    it encodes none. Without `spec` the suffix rule alone decides."""
    stem = Path(name).stem
    if pattern:
        match = re.fullmatch(pattern, stem)
        if not match:
            raise LabelError(f"{name}: does not match --label-pattern {pattern!r}")
        label = match.groupdict().get("label") or (match.group(1) if match.groups() else match.group(0))
        candidates = [label or ""]
    else:
        match = SUFFIX.match(stem)
        candidates = [stem, match["label"]] if match else [stem]
        if spec is None:
            return candidates[-1]
    if spec is None:
        return candidates[0]
    for label in candidates:
        if spec.label_problem(label) is None:
            return label
    raise LabelError(f"{name}: {spec.label_problem(candidates[-1])}")


def list_images(folder) -> list[Path]:
    """Image files in `folder` and its subfolders (not those of SKIPPED_FOLDERS), sorted by path."""
    folder = Path(folder)
    if not folder.exists():
        raise DatasetError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; pass a folder of CAPTCHA images")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                  and not any(part in SKIPPED_FOLDERS or part.startswith(".")
                              for part in p.relative_to(folder).parts[:-1]))


def find_labels_file(folder) -> Path | None:
    folder = Path(folder)
    found = [folder / name for name in LABEL_FILES if (folder / name).is_file()]
    if len(found) > 1:
        raise DatasetError(f"{folder}: holds {' and '.join(p.name for p in found)}; keep one labels file "
                           f"or choose one with --labels FILE")
    return found[0] if found else None


def read_labels_file(path) -> tuple[list[Sample], list[str], set[Path]]:
    """(samples, problems, every path it names) of a labels file; paths are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such labels file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"{path}: cannot be read as UTF-8 text ({e})") from None
    root = path.parent
    rows, problems, named = [], [], set()
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if "\t" in line:
            fields = line.split("\t")
        elif "," in line:
            fields = next(csv.reader(io.StringIO(line)))
        elif path.suffix == ".txt":
            fields = line.split()
        else:
            fields = [line]
        fields = [f.strip() for f in fields]
        named.add((root / fields[0]).resolve())
        if not rows and not problems and fields[0].lower() in HEADER_WORDS and not (root / fields[0]).is_file():
            continue  # a header line
        if len(fields) < 2 or not fields[1]:
            problems.append(f"{path.name} line {number}: {fields[0] or line!r} has an empty label")
            continue
        if len(fields) > 2:
            problems.append(f"{path.name} line {number}: {len(fields)} fields; write file,label (one comma or tab)")
            continue
        rows.append((number, fields[0], fields[1]))
    samples, seen = [], {}
    for number, name, label in rows:
        image = (root / name)
        key = image.resolve()
        if key in seen:
            if seen[key] != label:
                problems.append(f"{path.name} line {number}: {name} is listed twice, as {seen[key]!r} and {label!r}")
            continue
        seen[key] = label
        if not image.is_file():
            problems.append(f"{path.name} line {number}: {name} does not exist (paths are relative to {root})")
            continue
        samples.append(Sample(image, label))
    return samples, problems, named


def read_samples(folder, labels=None, pattern: str | None = None, spec: CaptchaSpec | None = None,
                 fold_case: bool = False) -> tuple[list[Sample], list[str], str]:
    """(samples, problems, where the labels came from) of a folder, before they are checked
    against a spec's alphabet and length. `spec` only decides names that could be read two ways."""
    folder = Path(folder)
    images = list_images(folder)
    labels_file = Path(labels) if labels else find_labels_file(folder)
    if labels_file:
        samples, problems, named = read_labels_file(labels_file)
        missing = [p for p in images if p.resolve() not in named]
        problems += [f"{p.relative_to(folder)}: an image without a label in {labels_file.name}" for p in missing]
        source = f"labels from {labels_file}"
    else:
        samples, problems = [], []
        for path in images:
            try:
                samples.append(Sample(path, label_from_name(path.name, spec, pattern)))
            except LabelError as e:
                problems.append(f"{path.relative_to(folder)}: {str(e).split(': ', 1)[-1]}")
        source = f"labels from file names{f' (pattern {pattern!r})' if pattern else ''}"
    if fold_case:
        samples = [Sample(s.path, s.label.lower()) for s in samples]
    return samples, problems, source


def check_labels(samples: list[Sample], spec: CaptchaSpec) -> tuple[list[Sample], list[str]]:
    """(the samples whose labels fit `spec`, a problem line for each other one)."""
    good, problems = [], []
    for s in samples:
        problem = spec.label_problem(s.label)
        if problem:
            problems.append(f"{s.path.name}: label {s.label!r} {problem}")
        else:
            good.append(s)
    return good, problems


def scan_folder(folder, spec: CaptchaSpec, skip_invalid: bool = False, warn=print, labels=None,
                pattern: str | None = None, fold_case: bool = False) -> list[Sample]:
    """Every image of `folder` with its label, checked against `spec`. Problems are refused
    together, in one error that names the files (or skipped, with one warning, by `skip_invalid`)."""
    samples, problems, source = read_samples(folder, labels, pattern, spec, fold_case)
    samples, bad = check_labels(samples, spec)
    problems += bad
    if problems and not skip_invalid:
        raise DatasetError(
            f"{folder}: {len(problems)} problem(s) with the images and their labels ({source}; "
            f"{spec.lengths} characters of {spec.alphabet!r} expected):\n{listing(problems)}\n"
            f"Fix the labels or names, fix --alphabet/--length, give --labels FILE or --label-pattern REGEX, "
            f"or pass --skip-invalid to leave these out (nothing was changed).")
    if problems:
        warn(f"warning: left out {len(problems)} image(s) or label(s) of {folder} (first: {problems[0]})")
    if not samples:
        raise DatasetError(f"{folder}: no labelled images (images named by their answers, e.g. abc12.png, or a "
                           f"labels.csv of file,label lines) with extensions {', '.join(IMAGE_EXTENSIONS)}")
    return samples


def split_samples(samples: list[Sample], val_fraction: float, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Deterministic split by label, so duplicates of one answer never straddle train and validation."""
    labels = sorted({s.label for s in samples})
    random.Random(seed).shuffle(labels)
    n_val = max(1, round(len(labels) * val_fraction)) if val_fraction > 0 and len(labels) > 1 else 0
    val_labels = set(labels[:n_val])
    train = [s for s in samples if s.label not in val_labels]
    val = [s for s in samples if s.label in val_labels]
    return train, val


class FolderDataset(Dataset):
    """Images from disk -> (uint8 pixels from spec.geometry, target indices); training.to_input
    normalises (and augments) whole batches on the training device."""

    def __init__(self, samples: list[Sample], spec: CaptchaSpec):
        self.samples, self.spec = samples, spec

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        sample = self.samples[index]
        try:
            image = open_image(sample.path)
        except ImageError as e:
            raise DatasetError(f"{e}; run `python -m captcha clean {sample.path.parent}` "
                               f"to move unreadable files aside") from None
        return self.spec.geometry(image), torch.tensor(self.spec.encode(sample.label))


class SyntheticDataset(Dataset):
    """`count` generated CAPTCHAs, drawn on demand: item i is the same image every time."""

    def __init__(self, count: int, spec: CaptchaSpec, seed: int = 0, fonts: list[str] | None = None,
                 image_size: tuple[int, int] = (256, 256)):
        self.count, self.spec, self.seed = count, spec, seed
        self.fonts = synth.find_fonts(fonts)
        self.image_size = image_size

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        image, text = synth.sample(index, self.seed, self.spec.alphabet, (self.spec.min_length, self.spec.length),
                                   *self.image_size, fonts=self.fonts)
        return self.spec.geometry(image), torch.tensor(self.spec.encode(text))
