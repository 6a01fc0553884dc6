"""The weights we ship: both forms, fp16, small, self-describing, and reading the samples in data/."""
import pytest
from safetensors import safe_open

from captcha.recognizer import Recognizer
from captcha.spec import DEFAULT_ALPHABET
from captcha.weights import FILENAMES

from conftest import ROOT

WEIGHTS = ROOT / "weights"


def test_shipped_weights_are_both_resnet50_forms_fp16_small_and_share_a_trunk():
    rec = Recognizer.from_pretrained(WEIGHTS)  # the default folder, as every front end loads it
    assert set(rec.models) == {"one_go", "sequential"}
    for info in rec.infos.values():
        assert info.arch == "resnet50"
        assert info.spec.alphabet == DEFAULT_ALPHABET and info.spec.length == 5
    assert rec.shared_trunk  # trained together (train.py --form joint, gpu_round.py): one trunk pass per image
    total = 0
    for name in FILENAMES.values():
        with safe_open(str(WEIGHTS / name), "pt") as f:
            assert all(str(f.get_slice(k).get_dtype()) in ("F16", "I64") for k in f.keys())
        total += (WEIGHTS / name).stat().st_size
    assert total < 120 * 1000 * 1000
    card = (WEIGHTS / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n") and "license:" in card and "metrics:" in card


def read_samples(sample_images) -> dict[str, list[str]]:
    """{form: names of the samples it read wrong}."""
    rec = Recognizer.from_pretrained(WEIGHTS)
    wrong = {form: [] for form in rec.models}
    for path, pred in zip(sample_images, rec.predict_batch(sample_images)):
        for form, reading in pred.readings().items():
            if reading.text != path.stem.split("_")[0]:
                wrong[form].append(f"{path.name} read {reading.text}")
    return wrong


def test_shipped_weights_read_most_samples(sample_images):
    """A floor under the interim weights, so a worse file cannot be shipped unnoticed: measured on
    2026-11-27 (round 8), each form misread 1 of the 30 library-drawn samples (`G0pb8` read `GOpb8`)."""
    wrong = read_samples(sample_images)
    assert len(sample_images) == 30
    for form, misses in wrong.items():
        assert len(misses) <= 4, (form, misses)


@pytest.mark.xfail(reason="issue 3 open: the interim weights misread 1 of 30 samples with each form "
                          "(G0pb8 read GOpb8); this passes once the weights reach the 98% target", strict=False)
def test_shipped_weights_read_every_sample(sample_images):
    wrong = read_samples(sample_images)
    assert len(sample_images) >= 30 and not any(wrong.values()), wrong
