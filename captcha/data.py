"""Where training images and labels come from: folders named by their answers, or the generator.

A file's label is its name before the extension and before an optional `_N` duplicate
suffix: `abc12.png` and `abc12_2.png` are both "abc12".
"""
from __future__ import annotations

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

_DUPLICATE_SUFFIX = re.compile(r"^(?P<label>.+)_(?P<n>\d+)$")
SKIPPED_FOLDERS = ("_corrupted",)


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str


def label_from_name(name: str, spec: CaptchaSpec) -> str:
    """The answer a file name encodes; raises LabelError saying why if it encodes none."""
    stem = Path(name).stem
    if spec.label_problem(stem) is None:
        return stem
    match = _DUPLICATE_SUFFIX.match(stem)
    if match and spec.label_problem(match["label"]) is None:
        return match["label"]
    raise LabelError(f"{name}: {spec.label_problem(match['label'] if match else stem)}")


def list_images(folder) -> list[Path]:
    """Image files directly inside `folder`, sorted by name."""
    folder = Path(folder)
    if not folder.exists():
        raise DatasetError(f"{folder}: no such folder")
    if not folder.is_dir():
        raise DatasetError(f"{folder}: not a folder; pass a folder of images named by their answers")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def scan_folder(folder, spec: CaptchaSpec, skip_invalid: bool = False, warn=print) -> list[Sample]:
    """Every image in `folder` with its label. Invalid names are refused together, in one error."""
    samples, refused = [], []
    for path in list_images(folder):
        try:
            samples.append(Sample(path, label_from_name(path.name, spec)))
        except LabelError as e:
            refused.append(str(e))
    if refused and not skip_invalid:
        shown = "\n  ".join(refused[:20]) + (f"\n  ... and {len(refused) - 20} more" if len(refused) > 20 else "")
        raise DatasetError(
            f"{folder}: {len(refused)} file(s) are not named by a valid label ({spec.length} characters of "
            f"{spec.alphabet!r}):\n  {shown}\nRename them, fix --alphabet/--length, or pass --skip-invalid to skip them.")
    if refused:
        warn(f"warning: skipped {len(refused)} file(s) in {folder} whose names are not valid labels "
             f"(first: {refused[0]})")
    if not samples:
        raise DatasetError(f"{folder}: no images named by their answers (e.g. abc12.png) "
                           f"with extensions {', '.join(IMAGE_EXTENSIONS)}")
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
        image, text = synth.sample(index, self.seed, self.spec.alphabet, self.spec.length,
                                   *self.image_size, fonts=self.fonts)
        return self.spec.geometry(image), torch.tensor(self.spec.encode(text))
