"""Many named inputs -> one row each (a reading or an error), with the limits every front end applies.

The API, the Gradio page and the Streamlit page all read batches here, so they open zips the same
way, refuse the same sizes and counts, and write the same CSV. A bad file costs its own row only.
"""
from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

from .errors import CaptchaError, ImageError
from .images import IMAGE_EXTENSIONS, open_image

if TYPE_CHECKING:  # the recognizer is passed in: reading files needs no torch
    from .recognizer import Prediction, Recognizer

MB = 1 << 20
MAX_UPLOAD_MB = 5  # per file, and per zip member: a CAPTCHA is a few kB
MAX_BATCH = 64  # images per batch, zip members counted one by one
ZIP_MAGIC = b"PK\x03\x04"
COLUMNS = ["file", "answer", "answer_confidence", "sure", "one_go", "one_go_confidence", "sequential",
           "sequential_confidence", "elapsed_ms", "error"]


class LimitError(CaptchaError):
    """Input over a size or count limit: web front ends answer it 413, not the 422 of an unreadable image."""

    status = 413


@dataclass(frozen=True)
class Limits:
    max_upload_mb: float = MAX_UPLOAD_MB
    max_batch: int = MAX_BATCH

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * MB)


@dataclass
class Row:
    """One image of a batch: its name, and either its decoded image and Prediction or an error message."""

    file: str
    prediction: Prediction | None = None
    error: str = ""
    image: Image.Image | None = None

    def to_dict(self) -> dict:
        """The JSON shape: {"file", **Prediction.to_dict()} or {"file", "error"}."""
        if self.prediction is None:
            return {"file": self.file, "error": self.error}
        return {"file": self.file, **self.prediction.to_dict()}


def open_one(name: str, source, limits: Limits = Limits()) -> Image.Image:
    """Bytes or a path -> an RGB image, refusing (LimitError) a file over the size limit.

    A path is read at most one byte past the limit, so a huge file is never loaded whole.
    """
    limit = limits.max_upload_bytes
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{name}: no such file")
        with open(path, "rb") as f:
            source = f.read(limit + 1)
    if len(source) > limit:
        raise LimitError(f"{name}: over the {limits.max_upload_mb:g} MB limit per file; "
                         f"a CAPTCHA is a few kB, so send a smaller image")
    return open_image(source, name=name)


def unpack(inputs, limits: Limits = Limits()) -> list[tuple[str, bytes | Path | CaptchaError]]:
    """(name, bytes or path) -> one entry per image, zips opened as `zipname/member`; an entry that
    cannot be read carries its error. Refuses the whole batch (LimitError), before extracting
    anything, if it holds more images than the limit."""
    entries, archives = [], []
    try:
        for name, source in inputs:
            archive = _open_zip(name, source)
            if isinstance(archive, CaptchaError):
                entries.append((name, archive))
            elif archive is None:
                entries.append((name, Path(source) if isinstance(source, (str, os.PathLike)) else bytes(source)))
            else:
                archives.append(archive)
                members = [m for m in archive.infolist() if _is_image_member(m)]
                if not members:
                    entries.append((name, ImageError(f"{name}: the zip holds no images "
                                                     f"({', '.join(IMAGE_EXTENSIONS)})")))
                entries += [(f"{name}/{m.filename}", (archive, m)) for m in members]
        if len(entries) > limits.max_batch:
            raise LimitError(f"{len(entries)} images in one batch; the limit is {limits.max_batch}: "
                             f"send them in smaller batches")
        return [(name, _extract(name, *entry, limits) if isinstance(entry, tuple) else entry)
                for name, entry in entries]
    finally:
        for archive in archives:
            archive.close()


def read_rows(recognizer: Recognizer, inputs, limits: Limits = Limits(), min_confidence: float | None = None) -> list[Row]:
    """(name, bytes or path) -> one Row per image, in order, all read in one predict_batch call
    (`min_confidence`: the threshold for `sure`, if not the weights')."""
    rows = []
    for name, entry in unpack(inputs, limits):
        try:
            if isinstance(entry, CaptchaError):
                raise entry
            rows.append(Row(name, image=open_one(name, entry, limits)))
        except CaptchaError as e:  # a bad file costs its own reading, not the others'
            rows.append(Row(name, error=str(e)))
    good = [row for row in rows if row.image is not None]
    if good:
        for row, prediction in zip(good, recognizer.predict_batch([row.image for row in good],
                                                                  min_confidence=min_confidence)):
            row.prediction = prediction
    return rows


def line(row: Row) -> list:
    """A row as a table or CSV line, in COLUMNS order; numbers rounded as in Prediction.to_dict."""
    out = row.to_dict()
    values = {"file": row.file, "elapsed_ms": out.get("elapsed_ms"), "error": row.error}
    answer = out.get("answer") or {}
    values.update(answer=answer.get("text", ""), answer_confidence=answer.get("confidence"), sure=answer.get("sure"))
    for form in ("one_go", "sequential"):
        reading = out.get(form) or {}
        values[form], values[f"{form}_confidence"] = reading.get("text", ""), reading.get("confidence")
    return [values[c] for c in COLUMNS]


def csv_text(rows: list[Row]) -> str:
    """The whole batch as CSV: a COLUMNS header, then one line per row."""
    out = io.StringIO()
    csv.writer(out).writerows([COLUMNS, *(line(row) for row in rows)])
    return out.getvalue()


def _open_zip(name: str, source) -> zipfile.ZipFile | CaptchaError | None:
    """The archive if source is a zip (by its magic bytes), its error if it is a broken one, else None."""
    if isinstance(source, (str, os.PathLike)):
        try:
            with open(source, "rb") as f:
                if f.read(4) != ZIP_MAGIC:
                    return None
        except OSError:  # missing or unreadable: open_one says so
            return None
    elif bytes(source[:4]) != ZIP_MAGIC:
        return None
    else:
        source = io.BytesIO(bytes(source))
    try:
        return zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        return CaptchaError(f"{name}: not a readable zip archive ({e}); zip the images again")


def _is_image_member(member: zipfile.ZipInfo) -> bool:
    """Images only: no folders, no other files, no macOS resource forks or dotfiles."""
    return (not member.is_dir() and member.filename.lower().endswith(IMAGE_EXTENSIONS)
            and not member.filename.startswith("__MACOSX/") and not Path(member.filename).name.startswith("."))


def _extract(name: str, archive: zipfile.ZipFile, member: zipfile.ZipInfo, limits: Limits) -> bytes | CaptchaError:
    try:  # never trust the member's stated size: read at most one byte past the limit
        with archive.open(member) as f:
            return f.read(limits.max_upload_bytes + 1)
    except Exception as e:  # encrypted, unsupported compression, corrupt stream, a size that lies
        return CaptchaError(f"{name}: cannot be extracted from the zip ({e}); the archive is damaged or "
                            f"encrypted: zip the images again, without a password")
