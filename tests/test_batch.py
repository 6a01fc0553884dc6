"""captcha.batch: named files, bytes, paths and zips -> one row per image, with the limits, and the CSV."""
from __future__ import annotations

import ast
import csv
import io
import struct

import pytest

from captcha import Recognizer, batch
from captcha.batch import Limits, LimitError
from conftest import ROOT, zip_of

LIMITS = Limits(max_upload_mb=0.1, max_batch=5)
LIMIT = LIMITS.max_upload_bytes  # ~100 kB; a sample CAPTCHA is ~10 kB


@pytest.fixture(scope="module")
def recognizer(tiny_weights) -> Recognizer:
    return Recognizer.from_pretrained(tiny_weights)


def lying_zip(name: str, data: bytes, stated_size: int) -> bytes:
    """A zip whose one member states `stated_size` bytes (in both headers) but inflates to all of `data`."""
    archive = bytearray(zip_of({name: data}))
    struct.pack_into("<I", archive, archive.find(b"PK\x03\x04") + 22, stated_size)
    struct.pack_into("<I", archive, archive.find(b"PK\x01\x02") + 24, stated_size)
    return bytes(archive)


def texts(rows) -> list[tuple[str, str]]:
    return [(r.prediction.one_go.text, r.prediction.sequential.text) for r in rows]


def read(recognizer, inputs, limits=LIMITS):
    return batch.read_rows(recognizer, inputs, limits)


# --- what is read ---------------------------------------------------------------------------------

def test_bytes_and_paths_give_one_row_each_in_order_as_predict_batch_reads_them(recognizer, sample_images):
    a, b, c = sample_images[:3]
    rows = read(recognizer, [(a.name, a.read_bytes()), (b.name, b), (c.name, str(c))])
    assert [r.file for r in rows] == [a.name, b.name, c.name]
    assert all(r.error == "" and r.image is not None for r in rows)
    expected = recognizer.predict_batch([a, b, c])
    assert texts(rows) == [(e.one_go.text, e.sequential.text) for e in expected]
    for row, e in zip(rows, expected):
        assert row.prediction.sequential.confidence == pytest.approx(e.sequential.confidence, rel=1e-3, abs=1e-6)


def test_a_zip_gives_one_row_per_image_member_named_zip_slash_member(recognizer, sample_images):
    a, b, c = sample_images[:3]
    archive = zip_of({a.name: a.read_bytes(), f"inner/{b.name}": b.read_bytes(), "inner/": b"",
                      "notes.txt": b"not an image name", "__MACOSX/._x.png": b"resource fork",
                      "inner/.hidden.png": b"dotfile"})
    rows = read(recognizer, [("shots.zip", archive), (c.name, c)])
    assert [r.file for r in rows] == [f"shots.zip/{a.name}", f"shots.zip/inner/{b.name}", c.name]
    expected = recognizer.predict_batch([a, b, c])
    assert texts(rows) == [(e.one_go.text, e.sequential.text) for e in expected]


def test_a_zip_given_as_a_path_is_opened_too(recognizer, sample_images, tmp_path):
    path = tmp_path / "shots.zip"
    path.write_bytes(zip_of({p.name: p.read_bytes() for p in sample_images[:2]}))
    rows = read(recognizer, [("shots.zip", path)])
    assert [r.file for r in rows] == [f"shots.zip/{p.name}" for p in sample_images[:2]]
    assert all(r.prediction is not None for r in rows)


# --- bad input: an error row naming the file, and the others still read -----------------------------

def test_each_bad_file_is_an_error_row_naming_it_and_the_others_are_read(recognizer, sample_images, tmp_path):
    a, b = sample_images[:2]
    inputs = [("broken.zip", b"PK\x03\x04 this is no archive"), (a.name, a), ("notes.png", b"plain text"),
              ("empty.png", b""), ("big.png", bytes(LIMIT + 1)), ("gone.png", tmp_path / "gone.png"),
              ("nothing.zip", zip_of({"readme.txt": b"no images here"})), (b.name, b.read_bytes())]
    rows = read(recognizer, inputs, Limits(max_upload_mb=0.1, max_batch=len(inputs)))
    assert [r.file for r in rows] == [name for name, _ in inputs]
    errors = {r.file: r.error for r in rows if r.error}
    assert set(errors) == {"broken.zip", "notes.png", "empty.png", "big.png", "gone.png", "nothing.zip"}
    for name, words in {"broken.zip": "not a readable zip archive", "notes.png": "not an image",
                        "empty.png": "empty", "big.png": "over the 0.1 MB limit per file",
                        "gone.png": "no such file", "nothing.zip": "holds no images"}.items():
        assert errors[name].startswith(f"{name}: ") and words in errors[name], errors[name]
    good = [r for r in rows if not r.error]
    assert all(r.prediction is None and r.image is None for r in rows if r.error)
    assert texts(good) == [(e.one_go.text, e.sequential.text) for e in recognizer.predict_batch([a, b])]


def test_a_file_at_the_size_limit_is_read_and_one_byte_more_is_not(recognizer, sample_images):
    data = sample_images[0].read_bytes()
    limits = Limits(max_upload_mb=len(data) / batch.MB, max_batch=5)
    at, over = read(recognizer, [("at.png", data), ("over.png", data + b"\0")], limits)
    assert at.error == "" and "over the" in over.error


def test_zip_members_over_the_size_limit_are_refused_without_trusting_their_stated_size(recognizer, sample_images):
    a = sample_images[0]
    honest = zip_of({"big.png": bytes(LIMIT + 100), a.name: a.read_bytes()})  # zeros: a few hundred bytes zipped
    lying = lying_zip("small.png", bytes(10 * LIMIT), stated_size=100)
    rows = read(recognizer, [("honest.zip", honest), ("lying.zip", lying)])
    assert [r.file for r in rows] == ["honest.zip/big.png", f"honest.zip/{a.name}", "lying.zip/small.png"]
    assert rows[0].error.startswith("honest.zip/big.png: ") and "over the 0.1 MB limit" in rows[0].error
    assert rows[1].prediction is not None
    assert rows[2].error.startswith("lying.zip/small.png: ") and rows[2].prediction is None


def test_member_reads_stop_one_byte_past_the_limit(sample_images):
    archive = zip_of({"huge.png": bytes(50 * LIMIT)})
    [(name, data)] = batch.unpack([("a.zip", archive)], LIMITS)
    assert name == "a.zip/huge.png" and len(data) == LIMIT + 1


# --- the count limit ------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["files", "zip members", "both"])
def test_more_images_than_the_count_limit_refuse_the_whole_batch(recognizer, sample_images, how):
    samples = sample_images[:LIMITS.max_batch + 1]
    files = [(p.name, p.read_bytes()) for p in samples]
    inputs = {"files": files, "zip members": [("many.zip", zip_of(dict(files)))],
              "both": [files[0], ("rest.zip", zip_of(dict(files[1:])))]}[how]
    with pytest.raises(LimitError, match=f"{len(samples)} images in one batch; the limit is {LIMITS.max_batch}") as e:
        read(recognizer, inputs)
    assert e.value.status == 413
    assert len(read(recognizer, files[:-1])) == LIMITS.max_batch  # at the limit: read


# --- one file -------------------------------------------------------------------------------------

def test_open_one_refuses_a_file_over_the_size_limit(sample_images, tmp_path):
    assert batch.open_one("a.png", sample_images[0], LIMITS).mode == "RGB"
    big = tmp_path / "big.png"
    big.write_bytes(bytes(LIMIT + 1))
    for source in (big, big.read_bytes()):
        with pytest.raises(LimitError, match="big.png: over the 0.1 MB limit per file") as e:
            batch.open_one("big.png", source, LIMITS)
        assert e.value.status == 413


def test_default_limits_are_5_mb_per_file_and_64_images():
    assert (Limits().max_upload_bytes, Limits().max_batch) == (5 << 20, 64)


# --- what is shown and downloaded -----------------------------------------------------------------

def test_rows_as_json_table_lines_and_csv(recognizer, sample_images):
    a = sample_images[0]
    good, bad = read(recognizer, [(a.name, a), ("bad.png", b"not an image")])
    assert good.to_dict() == {"file": a.name, **good.prediction.to_dict()}
    assert bad.to_dict() == {"file": "bad.png", "error": bad.error}
    p = good.prediction.to_dict()
    assert batch.line(good) == [a.name, p["answer"]["text"], p["answer"]["confidence"], p["answer"]["sure"],
                                p["one_go"]["text"], p["one_go"]["confidence"], p["sequential"]["text"],
                                p["sequential"]["confidence"], p["elapsed_ms"], ""]
    assert batch.line(bad) == ["bad.png", "", None, None, "", None, "", None, None, bad.error]
    lines = list(csv.reader(io.StringIO(batch.csv_text([good, bad]))))
    assert lines[0] == batch.COLUMNS
    assert len(lines) == 3 and lines[1][:2] == [a.name, p["answer"]["text"]] and lines[2][-1] == bad.error


def test_the_batch_module_needs_no_front_end_and_no_direct_torch():
    tree = ast.parse((ROOT / "captcha" / "batch.py").read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert not imported & {"gradio", "fastapi", "starlette", "streamlit", "torch"}
