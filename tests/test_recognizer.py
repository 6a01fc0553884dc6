import io

import numpy as np
import pytest
from PIL import Image

from captcha.errors import ImageError, WeightsError
from captcha.recognizer import Recognizer
from captcha.spec import CaptchaSpec

from conftest import TINY_SPEC


@pytest.fixture(scope="module")
def recognizer(tiny_weights):
    return Recognizer.from_pretrained(tiny_weights, precision="fp32")


def test_every_input_type_gives_the_same_reading(recognizer, sample_images):
    path = sample_images[0]
    image = Image.open(path)
    readings = [recognizer.predict(x) for x in (path, str(path), path.read_bytes(), image, np.asarray(image.convert("RGB")))]
    texts = {(p.one_go.text, p.sequential.text) for p in readings}
    assert len(texts) == 1


def test_prediction_fields(recognizer, sample_images):
    pred = recognizer.predict(sample_images[0])
    for reading in (pred.one_go, pred.sequential):
        assert len(reading.text) == TINY_SPEC.length and set(reading.text) <= set(TINY_SPEC.alphabet)
        assert [c.char for c in reading.chars] == list(reading.text)
        assert 0 < reading.confidence <= 1
        assert reading.confidence == pytest.approx(np.prod([c.confidence for c in reading.chars]), rel=1e-5)
    assert pred.sequential.maps.shape[0] == TINY_SPEC.length and pred.one_go.maps is None
    d = pred.to_dict()
    assert set(d) == {"one_go", "sequential", "elapsed_ms"} and d["one_go"]["text"] == pred.one_go.text


def test_batch_matches_single(recognizer, sample_images):
    batch = recognizer.predict_batch(sample_images[:5], batch_size=2)
    single = [recognizer.predict(p) for p in sample_images[:5]]
    assert [(b.one_go.text, b.sequential.text) for b in batch] == [(s.one_go.text, s.sequential.text) for s in single]


def test_bad_inputs(recognizer, tmp_path):
    with pytest.raises(ImageError, match="not an image"):
        recognizer.predict(b"GIF89a but not really")
    with pytest.raises(WeightsError, match="no such weights folder"):
        Recognizer.from_pretrained(tmp_path / "nothing-here")
    with pytest.raises(WeightsError, match="holds no weights"):
        Recognizer.from_pretrained(tmp_path)
    with pytest.raises(WeightsError, match="were asked for"):
        Recognizer.from_pretrained(recognizer.infos["one_go"].path.parent, spec=CaptchaSpec())


def test_single_form_folder(tiny_weights, tmp_path):
    (tmp_path / "sequential.safetensors").write_bytes((tiny_weights / "sequential.safetensors").read_bytes())
    rec = Recognizer.from_pretrained(tmp_path)
    pred = rec.predict(Image.new("RGB", (64, 32), "white"))
    assert pred.one_go is None and pred.sequential is not None and set(pred.readings()) == {"sequential"}


def test_package_level_api(tiny_weights, sample_images):
    import captcha
    pred = captcha.Recognizer.from_pretrained(tiny_weights).predict(sample_images[0])
    assert isinstance(pred, captcha.Prediction) and isinstance(pred.one_go, captcha.Reading)


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_shared_trunk_runs_once_and_reads_as_two_models_would(tmp_path, sample_images, engine):
    """Files saved from one joint model share their trunk; the Recognizer then runs it once per
    image (with either engine), and the readings equal those of the two PyTorch models loaded separately."""
    import torch

    from captcha.models import build_model
    from captcha.weights import FILENAMES, load_weights, save_weights

    torch.manual_seed(1)
    joint = build_model("joint", TINY_SPEC, arch="resnet18")
    for form in ("one_go", "sequential"):
        save_weights(tmp_path / FILENAMES[form], joint.part(form), form, "resnet18")
    shared = Recognizer.from_pretrained(tmp_path, precision="fp32", engine=engine)
    assert shared.shared_trunk and shared.engine == engine and len(shared.trunks) == 1

    calls = []
    key, run = next(iter(shared.trunks.items()))
    shared.trunks[key] = lambda x: calls.append(1) or run(x)
    pred = shared.predict(sample_images[0])
    assert len(calls) == 1

    image = Image.open(sample_images[0])
    with torch.inference_mode():
        for form in ("one_go", "sequential"):
            model, _ = load_weights(tmp_path / FILENAMES[form])  # on its own, with its own trunk
            probs = model(TINY_SPEC.preprocess(image)[None]).softmax(-1)[0]
            reading = getattr(pred, form)
            assert reading.text == "".join(TINY_SPEC.alphabet[i] for i in probs.argmax(-1))
            assert reading.confidence == pytest.approx(float(probs.max(-1).values.prod()), rel=1e-4)


def test_different_trunks_are_not_shared(recognizer):
    assert not recognizer.shared_trunk  # tiny_weights: two independently initialised models
