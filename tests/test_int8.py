"""The int8 trunk: made from images of the weights' style, checked against fp32, stored as ranges
in the weights' metadata, used by --engine onnx-int8 and by auto only when it passed."""
import shutil

import pytest

from captcha import int8, onnx_trunk, synth
from captcha.data import scan_folder
from captcha.errors import CaptchaError
from captcha.recognizer import Recognizer
from captcha.weights import FILENAMES, read_info

from conftest import TINY_SPEC

pytestmark = pytest.mark.skipif(not onnx_trunk.available(), reason="needs onnxruntime")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("int8_images")
    synth.write_folder(folder, 40, seed=11, alphabet=TINY_SPEC.alphabet, length=TINY_SPEC.length)
    return scan_folder(folder, TINY_SPEC)


def quantized(tiny_weights, tmp_path, images, monkeypatch, min_agreement):
    weights = tmp_path / "weights"
    shutil.copytree(tiny_weights, weights)
    monkeypatch.setattr(int8, "MIN_AGREEMENT", min_agreement)
    rec = Recognizer.from_pretrained(weights, precision="fp32", engine="onnx")
    record = int8.quantize(rec, [s.path for s in images[:10]], images[10:], min_check=20)
    return weights, record


def test_a_passed_int8_trunk_is_stored_as_ranges_and_read_by_its_engine(tiny_weights, tmp_path, images, monkeypatch):
    weights, record = quantized(tiny_weights, tmp_path, images, monkeypatch, min_agreement=0.0)
    assert record["check"]["passed"] and record["check"]["images"] == 30 and record["calibration_images"] == 10
    for name in FILENAMES.values():  # each form's file carries its trunk's ranges and the check, nothing else
        stored = read_info(weights / name).int8
        assert stored["check"] == record["check"] and stored["ranges"] and stored["settings"] == int8.SETTINGS
    assert sorted(p.name for p in weights.iterdir()) == sorted(FILENAMES.values())
    fp32 = Recognizer.from_pretrained(weights, precision="fp32", engine="onnx")
    q = Recognizer.from_pretrained(weights, engine="onnx-int8")
    assert q.engine == "onnx-int8" and q.precision == "int8"
    pairs = list(zip(fp32.predict_batch([s.path for s in images[10:]]), q.predict_batch([s.path for s in images[10:]])))
    agree = sum(a.one_go.text == b.one_go.text and a.sequential.text == b.sequential.text for a, b in pairs) / len(pairs)
    assert agree == pytest.approx(record["check"]["agreement"])  # the check measured what the engine reads
    auto = Recognizer.from_pretrained(weights)  # auto times both and keeps the faster
    plain = Recognizer.from_pretrained(tiny_weights)  # what auto picks without an int8 trunk
    assert set(auto.engine_ms) == {plain.engine, "onnx-int8"}
    assert auto.engine == min(auto.engine_ms, key=auto.engine_ms.get)


def test_a_failed_check_keeps_auto_off_int8_and_says_why(tiny_weights, tmp_path, images, monkeypatch):
    weights, record = quantized(tiny_weights, tmp_path, images, monkeypatch, min_agreement=1.01)
    assert not record["check"]["passed"] and "agree with fp32" in record["check"]["why"]
    assert Recognizer.from_pretrained(weights).engine != "onnx-int8" and not Recognizer.from_pretrained(weights).engine_ms
    with pytest.raises(CaptchaError, match="failed its check"):
        Recognizer.from_pretrained(weights, engine="onnx-int8")


def test_weights_without_int8_refuse_the_engine_clearly(tiny_weights):
    with pytest.raises(CaptchaError, match="no int8 trunk yet: make one with python -m captcha quantize"):
        Recognizer.from_pretrained(tiny_weights, engine="onnx-int8")
    assert Recognizer.from_pretrained(tiny_weights).engine_ms == {}


def test_the_check_needs_enough_images(tiny_weights, images):
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    with pytest.raises(ValueError, match="at least 500 labelled images"):
        int8.quantize(rec, [s.path for s in images[:10]], images[10:])


def test_doubtful_readings_are_read_again_in_fp32(tiny_weights, tmp_path, images, monkeypatch):
    weights, record = quantized(tiny_weights, tmp_path, images, monkeypatch, min_agreement=0.0)
    check = record["check"]
    assert check["reread_below"] == int8.REREAD_BELOW and 0 <= check["reread_share"] <= 1
    paths = [s.path for s in images[10:]]
    fp32 = Recognizer.from_pretrained(weights, precision="fp32", engine="onnx").predict_batch(paths)
    q = Recognizer.from_pretrained(weights, engine="onnx-int8")
    q.reread_below = 1.01  # every reading is doubtful: every image is read in fp32
    assert [p.to_dict() | {"elapsed_ms": 0} for p in q.predict_batch(paths)] == \
        [p.to_dict() | {"elapsed_ms": 0} for p in fp32]
    q.reread_below = 0  # none is: the int8 trunk's own readings, as the check measured them
    alone = q.predict_batch(paths)
    agree = sum(a.one_go.text == b.one_go.text and a.sequential.text == b.sequential.text
                for a, b in zip(fp32, alone)) / len(paths)
    assert agree == pytest.approx(check["agreement_without_rereads"])
    assert q._doubtful({"one_go": [p.one_go for p in alone]}) == []
