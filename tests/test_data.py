import pytest
import torch
from PIL import Image

from captcha.data import FolderDataset, label_from_name, scan_folder, split_samples
from captcha.errors import DatasetError, LabelError
from captcha.spec import CaptchaSpec

SPEC = CaptchaSpec()


@pytest.mark.parametrize("name, label", [
    ("abc12.png", "abc12"), ("abc12_2.png", "abc12"), ("aB3_x.jpeg", None), ("Zz9Q0_17.webp", "Zz9Q0")])
def test_labels_from_names(name, label):
    if label is None:
        with pytest.raises(LabelError, match="aB3_x.jpeg"):
            label_from_name(name, SPEC)
    else:
        assert label_from_name(name, SPEC) == label


def test_suffix_is_only_stripped_when_needed():
    spec = CaptchaSpec(alphabet="ab_12", length=4)
    assert label_from_name("ab_1.png", spec) == "ab_1"      # a valid label as it is
    assert label_from_name("ab_1_2.png", spec) == "ab_1"    # duplicate suffix


def _write(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (40, 20), "white").save(folder / name)


def test_invalid_names_refused_together(tmp_path):
    _write(tmp_path, ["abc12.png", "abc!2.png", "toolong1.png", "ab.png"])
    with pytest.raises(DatasetError) as e:
        scan_folder(tmp_path, SPEC)
    message = str(e.value)
    assert "3 problem(s)" in message and "abc!2.png" in message and "toolong1.png" in message and "ab.png" in message
    assert "--skip-invalid" in message


def test_skip_invalid_warns(tmp_path):
    _write(tmp_path, ["abc12.png", "abc!2.png"])
    warnings = []
    samples = scan_folder(tmp_path, SPEC, skip_invalid=True, warn=warnings.append)
    assert [s.label for s in samples] == ["abc12"] and "left out 1" in warnings[0]


def test_empty_and_missing_folders(tmp_path):
    with pytest.raises(DatasetError, match="no labelled images"):
        scan_folder(tmp_path, SPEC)
    with pytest.raises(DatasetError, match="no such folder"):
        scan_folder(tmp_path / "missing", SPEC)


def test_split_is_deterministic_and_keeps_duplicates_together(tmp_path):
    names = [f"{i:05d}.png" for i in range(50)] + [f"{i:05d}_2.png" for i in range(50)]
    _write(tmp_path, names)
    samples = scan_folder(tmp_path, CaptchaSpec(alphabet="0123456789"))
    train, val = split_samples(samples, 0.2, seed=3)
    assert (train, val) == split_samples(samples, 0.2, seed=3)
    assert split_samples(samples, 0.2, seed=4)[1] != val
    assert len(val) == 20 and len(train) == 80
    assert not {s.label for s in train} & {s.label for s in val}


def test_folder_dataset_items(tmp_path):
    _write(tmp_path, ["0123.png"])
    spec = CaptchaSpec(alphabet="0123456789", length=4, height=32, width=48)
    x, y = FolderDataset(scan_folder(tmp_path, spec), spec)[0]
    assert tuple(x.shape) == (3, 32, 48) and x.dtype == torch.uint8 and y.tolist() == [0, 1, 2, 3]


def test_unreadable_file_during_training_points_to_the_cleaner(tmp_path):
    (tmp_path / "0123.png").write_bytes(b"not a png")
    spec = CaptchaSpec(alphabet="0123456789", length=4)
    with pytest.raises(DatasetError, match="captcha clean"):
        FolderDataset(scan_folder(tmp_path, spec), spec)[0]
