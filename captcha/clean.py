"""The dataset cleaner: find images that do not decode and move them aside (never silently delete)."""
from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from .data import SKIPPED_FOLDERS, label_from_name, list_images
from .errors import LabelError
from .images import check_decodes
from .spec import CaptchaSpec

CORRUPTED_FOLDER = "_corrupted"
assert CORRUPTED_FOLDER in SKIPPED_FOLDERS


@dataclass
class CleanReport:
    scanned: int = 0
    ok: int = 0
    corrupted: list[tuple[str, str]] = field(default_factory=list)   # (file, reason)
    moved_to: str | None = None
    deleted: bool = False
    bad_names: list[tuple[str, str]] = field(default_factory=list)   # (file, why its name is no label)

    def to_dict(self) -> dict:
        return {"scanned": self.scanned, "ok": self.ok, "corrupted": len(self.corrupted),
                "corrupted_files": [{"file": f, "reason": r} for f, r in self.corrupted],
                "moved_to": self.moved_to, "deleted": self.deleted,
                "bad_names": len(self.bad_names), "bad_name_files": [{"file": f, "reason": r} for f, r in self.bad_names]}


def _free_name(folder: Path, name: str) -> Path:
    target, n = folder / name, 1
    while target.exists():
        n += 1
        target = folder / f"{Path(name).stem}.{n}{Path(name).suffix}"
    return target


def clean(folder, spec: CaptchaSpec | None = None, delete: bool = False, dry_run: bool = False) -> CleanReport:
    """Move (or with `delete`, remove) files that fail to decode; report names that are no label."""
    folder = Path(folder)
    spec = spec or CaptchaSpec()
    report = CleanReport()
    aside = folder / CORRUPTED_FOLDER
    for path in list_images(folder):
        report.scanned += 1
        reason = check_decodes(path)
        if reason is None:
            report.ok += 1
            try:
                label_from_name(path.name, spec)
            except LabelError as e:
                report.bad_names.append((path.name, str(e).split(": ", 1)[-1]))
            continue
        report.corrupted.append((path.name, reason))
        if dry_run:
            continue
        if delete:
            path.unlink()
            report.deleted = True
        else:
            aside.mkdir(exist_ok=True)
            shutil.move(str(path), _free_name(aside, path.name))
            report.moved_to = str(aside)
    return report
