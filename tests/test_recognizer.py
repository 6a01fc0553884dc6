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
    assert set(d) == {"answer", "one_go", "sequential", "elapsed_ms"} and d["one_go"]["text"] == pred.one_go.text
    more = max((pred.one_go, pred.sequential), key=lambda r: r.confidence)
    assert (pred.answer.text, pred.answer.confidence) == (more.text, more.confidence)
    assert pred.answer.sure is None and d["one_go"]["sure"] is None  # no calibration: no threshold


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
    shared.trunks[key] = lambda *args: calls.append(1) or run(*args)
    pred = shared.predict(sample_images[0])
    assert len(calls) == 1
    if engine == "onnx":  # both forms' heads are in the shared trunk's graph
        assert run.outputs == [("one_go", "logits"), ("sequential", "logits"), ("sequential", "maps")]

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


# --- calibration applied -----------------------------------------------------------------------

def test_temperature_scales_the_logits_and_keeps_the_text(recognizer, calibrated_weights, sample_images):
    calibrated = Recognizer.from_pretrained(calibrated_weights, precision="fp32")
    raw = recognizer.logits(sample_images[:3])
    for image, logits0, logits1 in zip(sample_images[:3], raw["one_go"], raw["sequential"]):
        before, after = recognizer.predict(image), calibrated.predict(image)
        for logits, form in ((logits0, "one_go"), (logits1, "sequential")):
            assert getattr(after, form).text == getattr(before, form).text  # a temperature never reorders
            z = logits / 0.25
            p = np.exp(z - z.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            assert getattr(after, form).confidence == pytest.approx(p.max(-1).prod(), rel=1e-3)


def test_sure_follows_the_stored_thresholds_and_a_per_call_override(calibrated_weights, sample_images):
    rec = Recognizer.from_pretrained(calibrated_weights, precision="fp32")
    stored = {form: info.calibration["threshold"] for form, info in rec.infos.items()}
    for pred in rec.predict_batch(sample_images):
        for form, reading in pred.readings().items():
            assert reading.sure == (reading.confidence >= stored[form])
        assert pred.answer.threshold == rec.threshold()
        assert pred.answer.sure == (pred.answer.confidence >= rec.threshold())
        if not pred.answer.sure:  # an unsure answer names its doubtful characters, and why
            assert pred.answer.doubtful and "below the" in pred.answer.reason()
            assert all(pred.answer.text[d["position"]] == d["char"] for d in pred.answer.doubtful)
    assert all(p.answer.sure for p in rec.predict_batch(sample_images, min_confidence=0.0))
    assert not any(p.answer.sure for p in rec.predict_batch(sample_images, min_confidence=1.0))
    strict = Recognizer.from_pretrained(calibrated_weights, precision="fp32", min_confidence=1.0)
    assert strict.threshold() == strict.threshold("one_go") == 1.0
    with pytest.raises(Exception, match="probability from 0 to 1"):
        rec.predict(sample_images[0], min_confidence=2)


def test_one_form_loaded_answers_with_its_reading_and_threshold(calibrated_weights, sample_images):
    rec = Recognizer.from_pretrained(calibrated_weights / "sequential.safetensors", precision="fp32")
    pred = rec.predict(sample_images[0])
    assert pred.one_go is None and pred.answer.form == "sequential" and pred.answer.forms_agree is None
    assert (pred.answer.text, pred.answer.confidence) == (pred.sequential.text, pred.sequential.confidence)
    assert pred.answer.threshold == rec.infos["sequential"].calibration["threshold"]


def test_moved_boxes_stay_inside_the_image():
    from captcha.recognizer import VIEWS, moved
    shipped = (0.0, 0.3125, 1.0, 0.6875)
    assert moved(shipped, VIEWS[0]) == pytest.approx((0.0, 0.3, 1.0, 0.675))  # a thirtieth of the box higher
    assert moved(shipped, VIEWS[1]) == pytest.approx((0.02, 0.3125, 1.0, 0.6875))
    assert moved(shipped, VIEWS[2]) == pytest.approx((0.0, 0.3125, 0.98, 0.6875))
    assert moved((0.0, 0.0, 1.0, 1.0), VIEWS[0]) == pytest.approx((0.0, 0.0, 1.0, 1 - 1 / 30))  # cut at the top


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_a_second_look_averages_four_views_of_doubtful_answers_only(calibrated_weights, sample_images, engine):
    import torch

    from captcha.images import open_image
    from captcha.recognizer import VIEWS
    paths = sample_images[:6]
    first = Recognizer.from_pretrained(calibrated_weights, precision="fp32", engine=engine).predict_batch(paths)
    rec = Recognizer.from_pretrained(calibrated_weights, precision="fp32", engine=engine, second_look=True)
    assert rec.second_look_below == 0.99
    rec.second_look_below = sorted(p.answer.confidence for p in first)[3]  # the three least sure answers
    second = rec.predict_batch(paths)

    images = [open_image(p) for p in paths]
    views = [rec._logits(rec._inputs(images))] + [rec._logits(rec._inputs(images, view)) for view in VIEWS]
    looked = 0
    for i, (a, b) in enumerate(zip(first, second)):
        if a.answer.confidence >= rec.second_look_below:
            assert b.to_dict() | {"elapsed_ms": 0} == a.to_dict() | {"elapsed_ms": 0}
            continue
        looked += 1
        for form in ("one_go", "sequential"):
            t = rec.infos[form].temperature
            mean = torch.stack([(v[form][0][i].float() / t).softmax(-1) for v in views]).mean(0)
            reading = getattr(b, form)
            assert reading.text == "".join(TINY_SPEC.alphabet[k] for k in mean.argmax(-1))
            assert reading.confidence == pytest.approx(float(mean.max(-1).values.prod()), rel=1e-4)
    assert looked == 3
