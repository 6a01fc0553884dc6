import numpy as np
import pytest

from captcha import synth
from captcha.data import SyntheticDataset
from captcha.spec import CaptchaSpec


def _pixels(image):
    return np.asarray(image)


def test_same_seed_same_pixels_other_seed_other_pixels():
    a = synth.generate("aB3xY", seed=7)
    assert np.array_equal(_pixels(a), _pixels(synth.generate("aB3xY", seed=7)))
    assert not np.array_equal(_pixels(a), _pixels(synth.generate("aB3xY", seed=8)))
    assert a.size == (256, 256) and a.mode == "RGB"


def test_style_light_background_dark_text():
    pixels = _pixels(synth.generate("aB3xY", seed=1)).astype(int)
    assert np.median(pixels) >= 230          # mostly background
    assert pixels.min() <= 200               # some text


def test_sizes_alphabet_length_and_stream_determinism():
    image, text = synth.sample(5, seed=3, alphabet="XYZ", length=7, width=200, height=70)
    assert image.size == (200, 70) and len(text) == 7 and set(text) <= set("XYZ")
    assert synth.sample(5, seed=3, alphabet="XYZ", length=7, width=200, height=70)[1] == text


def test_fonts_folder_file_and_builtin(tmp_path):
    fonts = synth.find_fonts()
    if fonts:  # DejaVu is on this machine; a folder of it works like the file list
        folder = tmp_path / "fonts"
        folder.mkdir()
        (folder / "one.ttf").write_bytes(open(fonts[0], "rb").read())
        assert synth.find_fonts([folder]) == [str(folder / "one.ttf")]
        synth.generate("abc", fonts=[str(folder / "one.ttf")])
    builtin = synth.generate("abc", seed=0, fonts=[])  # Pillow's own font
    assert _pixels(builtin).min() < 200
    with pytest.raises(FileNotFoundError):
        synth.find_fonts([tmp_path / "missing.ttf"])


def test_write_folder_names_by_answer_with_suffix(tmp_path):
    paths = synth.write_folder(tmp_path, 30, seed=0, alphabet="ab", length=2)
    assert len(paths) == 30 and len(set(paths)) == 30
    assert any("_" in p.stem for p in paths)  # only 4 labels exist: repeats get _N
    for p in paths:
        assert p.stem.split("_")[0] in {"aa", "ab", "ba", "bb"}


def test_synthetic_dataset():
    spec = CaptchaSpec(alphabet="0123456789", length=4, height=32, width=64)
    ds = SyntheticDataset(10, spec, seed=1)
    x, y = ds[3]
    x2, y2 = ds[3]
    assert tuple(x.shape) == (3, 32, 64) and y.tolist() == y2.tolist() and bool((x == x2).all())
