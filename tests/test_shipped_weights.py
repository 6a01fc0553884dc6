"""The weights we ship read every sample in data/ correctly, with both forms."""
import pytest
from safetensors import safe_open

from captcha.recognizer import Recognizer
from captcha.weights import FILENAMES

from conftest import ROOT

WEIGHTS = ROOT / "weights"
pytestmark = pytest.mark.skipif(not all((WEIGHTS / f).is_file() for f in FILENAMES.values()),
                                reason="no shipped weights yet")


def test_shipped_weights_read_every_sample(sample_images):
    rec = Recognizer.from_pretrained(WEIGHTS)
    assert set(rec.models) == {"one_go", "sequential"} and rec.describe()["one_go"]["arch"] == "resnet50"
    wrong = []
    for path, pred in zip(sample_images, rec.predict_batch(sample_images)):
        for form, reading in pred.readings().items():
            if reading.text != path.stem.split("_")[0]:
                wrong.append(f"{path.name}: {form} read {reading.text}")
    assert len(sample_images) >= 20 and not wrong, wrong


def test_shipped_weights_are_fp16_and_small():
    total = 0
    for name in FILENAMES.values():
        with safe_open(str(WEIGHTS / name), "pt") as f:
            assert all(str(f.get_slice(k).get_dtype()) in ("F16", "I64") for k in f.keys())
        total += (WEIGHTS / name).stat().st_size
    assert total < 120 * 1000 * 1000
