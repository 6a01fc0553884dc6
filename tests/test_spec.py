import pytest

from captcha.errors import LabelError, SpecError
from captcha.spec import DEFAULT_ALPHABET, CaptchaSpec


def test_defaults_are_the_large_captcha_dataset():
    spec = CaptchaSpec()
    assert spec.alphabet == DEFAULT_ALPHABET and len(spec.alphabet) == 62 and spec.length == 5


@pytest.mark.parametrize("kwargs, message", [
    (dict(alphabet="abca"), "duplicate"),
    (dict(alphabet=""), "non-empty"),
    (dict(alphabet="ab c"), "whitespace"),
    (dict(length=0), "length"),
    (dict(length=2.5), "length"),
    (dict(height=8), "height"),
    (dict(width=4096), "width"),
    (dict(crop=(0.5, 0, 0.4, 1)), "crop"),
    (dict(crop=(0, 0, 1)), "crop"),
])
def test_invalid_specs_are_refused(kwargs, message):
    with pytest.raises(SpecError, match=message):
        CaptchaSpec(**kwargs)


def test_json_round_trip():
    spec = CaptchaSpec(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", length=6, height=96, width=160,
                       crop=(0, 0.25, 1, 0.75))
    assert CaptchaSpec.from_json(spec.to_json()) == spec
    legacy = '{"alphabet": "ab", "length": 1, "height": 32, "width": 32}'  # no crop: the whole image
    assert CaptchaSpec.from_json(legacy).crop == (0.0, 0.0, 1.0, 1.0)
    with pytest.raises(SpecError):
        CaptchaSpec.from_json('{"alphabet": "aa", "length": 1, "height": 32, "width": 32}')
    with pytest.raises(SpecError):
        CaptchaSpec.from_json("not json")


def test_encode_decode_and_refusals():
    spec = CaptchaSpec(alphabet="0123456789", length=4)
    assert spec.encode("0429") == [0, 4, 2, 9]
    assert spec.decode([0, 4, 2, 9]) == "0429"
    with pytest.raises(LabelError, match="outside the alphabet"):
        spec.encode("04a9")
    with pytest.raises(LabelError, match="expected 4"):
        spec.encode("042")


def test_preprocess_shape_and_normalisation():
    from PIL import Image
    spec = CaptchaSpec(height=40, width=72)
    x = spec.preprocess(Image.new("L", (256, 256), 255))
    assert tuple(x.shape) == (3, 40, 72)
    assert x.min() > 2.0  # white, normalised with ImageNet statistics


def test_crop_reads_only_the_box():
    from PIL import Image
    image = Image.new("RGB", (100, 100), "white")
    image.paste((0, 0, 0), (0, 50, 100, 100))  # bottom half black
    top = CaptchaSpec(height=16, width=16, crop=(0, 0, 1, 0.5)).preprocess(image)
    bottom = CaptchaSpec(height=16, width=16, crop=(0, 0.5, 1, 1)).preprocess(image)
    assert top.min() > 2.0 and bottom.max() < -1.5
