"""The weights we ship: both forms, fp16, small, self-describing, and reading the samples in data/."""
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
    assert rec.shared_trunk  # trained together (train.py --form joint): one trunk pass per image
    total = 0
    for name in FILENAMES.values():
        with safe_open(str(WEIGHTS / name), "pt") as f:
            assert all(str(f.get_slice(k).get_dtype()) in ("F16", "I64") for k in f.keys())
        total += (WEIGHTS / name).stat().st_size
    assert total < 120 * 1000 * 1000
    card = (WEIGHTS / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n") and "license:" in card and "metrics:" in card


def test_shipped_weights_read_at_least_29_of_the_30_samples_with_each_form(sample_images):
    """The samples in data/ are library-drawn CAPTCHAs of the shipped style; a worse file cannot ship unnoticed."""
    assert len(sample_images) == 30
    rec = Recognizer.from_pretrained(WEIGHTS)
    wrong = {form: [] for form in rec.models}
    for path, pred in zip(sample_images, rec.predict_batch(sample_images)):
        for form, reading in pred.readings().items():
            if reading.text != path.stem.split("_")[0]:
                wrong[form].append(f"{path.name} read {reading.text}")
    for form, misses in wrong.items():
        assert len(misses) <= 1, (form, misses)
