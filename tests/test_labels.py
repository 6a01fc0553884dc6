"""Where labels come from: file names (with repeat and hash suffixes, or a pattern) and labels files;
every bad input refused in one message that names the files, with nothing changed on disk."""
from __future__ import annotations

import pytest
from PIL import Image

from captcha.data import label_from_name, read_samples, scan_folder
from captcha.errors import DatasetError, LabelError
from captcha.settings import auto_alphabet, auto_length, auto_size
from captcha.spec import CaptchaSpec

SPEC = CaptchaSpec(alphabet="0123456789abcdefghijklmnopqrstuvwxyz", length="4-6")


def image(path, size=(60, 20)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, "white").save(path)
    return path


def snapshot(folder):
    return sorted((p.relative_to(folder), p.stat().st_size) for p in folder.rglob("*"))


@pytest.mark.parametrize("name, label", [
    ("abc12.png", "abc12"), ("abc12_2.png", "abc12"), ("abc12-2.png", "abc12"), ("abc12.2.png", "abc12"),
    ("abc12_77b2c2f41ab8a8196ec3508e6f1171bd.jpg", "abc12"), ("1234.1.png", "1234"), ("0024miih-0.png", "0024miih"),
])
def test_names_lose_one_repeat_or_hash_suffix(name, label):
    assert label_from_name(name) == label


def test_short_hex_and_letters_are_no_suffix():
    assert label_from_name("abcd_ef.png") == "abcd_ef"
    assert label_from_name("abcd-deadbee.png") == "abcd-deadbee"  # 7 hex digits: not a hash


def test_label_pattern(tmp_path):
    image(tmp_path / "img_001_ab12.png")
    image(tmp_path / "img_002_cd34.png")
    samples = scan_folder(tmp_path, CaptchaSpec("0123456789abcd", 4), pattern=r"img_\d+_(?P<label>\w+)")
    assert [s.label for s in samples] == ["ab12", "cd34"]
    with pytest.raises(DatasetError, match="img_001_ab12.png: does not match --label-pattern"):
        scan_folder(tmp_path, CaptchaSpec("0123456789abcd", 4), pattern=r"x(\w+)")


@pytest.mark.parametrize("name, text", [
    ("labels.csv", "file,label\nimages/a.png,ab12\nimages/sub/b.png,cd345\n"),
    ("labels.csv", "images/a.png,ab12\nimages/sub/b.png,cd345\n"),          # no header
    ("labels.tsv", "filename\ttext\nimages/a.png\tab12\nimages/sub/b.png\tcd345\n"),
    ("labels.txt", "images/a.png ab12\nimages/sub/b.png cd345\n"),          # spaces
])
def test_labels_files_in_the_folder(tmp_path, name, text):
    image(tmp_path / "images" / "a.png")
    image(tmp_path / "images" / "sub" / "b.png")
    (tmp_path / name).write_text(text)
    samples = scan_folder(tmp_path, SPEC)
    assert {(s.path.relative_to(tmp_path).as_posix(), s.label) for s in samples} == {
        ("images/a.png", "ab12"), ("images/sub/b.png", "cd345")}


def test_labels_file_elsewhere_is_relative_to_itself(tmp_path):
    data, notes = tmp_path / "data", tmp_path / "notes"
    image(data / "x.png")
    notes.mkdir()
    (notes / "answers.csv").write_text("../data/x.png,ab12\n")
    assert [s.label for s in scan_folder(data, SPEC, labels=notes / "answers.csv")] == ["ab12"]


def test_every_labels_file_problem_in_one_message_and_nothing_changed(tmp_path):
    for name in ("a.png", "b.png", "c.png", "d.png", "unlisted.png"):
        image(tmp_path / name)
    (tmp_path / "labels.csv").write_text(
        "file,label\na.png,ab12\nmissing.png,ab12\nb.png,cd34\nb.png,ef56\nc.png,\nd.png,abcdefgh12\n")
    before = snapshot(tmp_path)
    with pytest.raises(DatasetError) as e:
        scan_folder(tmp_path, SPEC)
    message = str(e.value)
    for expected in ("missing.png does not exist", "b.png is listed twice, as 'cd34' and 'ef56'", "empty label",
                     "unlisted.png: an image without a label", "d.png: label 'abcdefgh12' has 10 characters, expected 4 to 6",
                     "--skip-invalid"):
        assert expected in message
    assert snapshot(tmp_path) == before
    warned = []
    kept = scan_folder(tmp_path, SPEC, skip_invalid=True, warn=warned.append)
    assert [s.label for s in kept] == ["ab12", "cd34"] and "left out 5" in warned[0]


def test_two_labels_files_are_ambiguous(tmp_path):
    image(tmp_path / "a.png")
    (tmp_path / "labels.csv").write_text("a.png,ab12\n")
    (tmp_path / "labels.txt").write_text("a.png ab12\n")
    with pytest.raises(DatasetError, match="keep one labels file or choose one with --labels"):
        scan_folder(tmp_path, SPEC)


def test_case_folding(tmp_path):
    image(tmp_path / "AbC1.png")
    samples, problems, _ = read_samples(tmp_path, fold_case=True)
    assert [s.label for s in samples] == ["abc1"] and not problems


def test_auto_settings_from_labels_and_sizes():
    assert auto_alphabet(["ba9", "Zc0"]) == "09Zabc"
    assert auto_length(["abcd", "abcdefg", "abcde"]) == "4-7"
    assert auto_length(["abcd", "efgh"]) == "4"
    assert auto_size([(92, 34)] * 3) == (64, 160)          # small images: 64 high, aspect kept
    assert auto_size([(240, 80), (240, 80)]) == (64, 192)
    assert auto_size([(200, 150)]) == (96, 128)
    assert auto_size([(1000, 100)]) == (96, 576)           # at most six heights wide
    assert auto_size([(92, 34)], crop=(0, 0, 0.5, 1)) == (64, 96)  # the crop's aspect ratio


def test_label_errors_name_the_file():
    with pytest.raises(LabelError, match="abcdefghi.png: has 9 characters, expected 4 to 6"):
        label_from_name("abcdefghi.png", CaptchaSpec("abcdefghi", "4-6"))
