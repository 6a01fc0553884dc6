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
