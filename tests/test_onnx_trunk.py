"""The ONNX Runtime engine: same readings as PyTorch, exported once and cached, clear refusals."""
from __future__ import annotations

import pytest
import torch

from captcha import onnx_trunk
from captcha.errors import CaptchaError
from captcha.recognizer import Recognizer
from conftest import TINY_SPEC

CHW = (3, TINY_SPEC.height, TINY_SPEC.width)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTCHA_CACHE", str(tmp_path))
    return tmp_path / "onnx"


def test_engines_read_a_batch_alike(tiny_weights, sample_images):
    """A batch of several images (the exported graph's batch dimension is free) reads the same."""
    torch_rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="torch")
    onnx_rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    assert (torch_rec.engine, onnx_rec.engine) == ("torch", "onnx")
    for a, b in zip(torch_rec.predict_batch(sample_images[:5]), onnx_rec.predict_batch(sample_images[:5])):
        for form in ("one_go", "sequential"):
            ra, rb = getattr(a, form), getattr(b, form)
            assert ra.text == rb.text
            assert ra.confidence == pytest.approx(rb.confidence, rel=1e-3, abs=1e-6)
        assert a.sequential.maps == pytest.approx(b.sequential.maps, abs=1e-4)


def test_export_is_cached_by_content(tiny_weights, cache, monkeypatch):
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="torch")
    trunk = rec.models["one_go"].trunk
    x = torch.randn(2, *CHW)
    first = onnx_trunk.OnnxTrunk(trunk, CHW)(x)
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1 and not list(cache.glob("*.part"))
    with torch.no_grad():
        assert first == pytest.approx(trunk(x), abs=1e-4)

    def no_export(*args):
        raise AssertionError("exported again although the cache holds this trunk")
    monkeypatch.setattr(onnx_trunk, "export", no_export)
    assert onnx_trunk.OnnxTrunk(trunk, CHW)(x) == pytest.approx(first, abs=1e-6)

    other = rec.models["sequential"].trunk  # another trunk (tiny_weights' forms are trained apart)
    assert onnx_trunk.trunk_key(other, CHW) != onnx_trunk.trunk_key(trunk, CHW)
    assert onnx_trunk.trunk_key(trunk, (3, 32, 96)) != onnx_trunk.trunk_key(trunk, CHW)


def test_unwritable_cache_costs_only_the_export(tiny_weights, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder would go")
    monkeypatch.setenv("CAPTCHA_CACHE", str(blocker))
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    assert rec.predict_batch([torch.zeros(TINY_SPEC.height, TINY_SPEC.width, 3, dtype=torch.uint8).numpy()])
    assert blocker.read_text().startswith("a file")


def test_engine_choices_and_refusals(tiny_weights, monkeypatch):
    with pytest.raises(ValueError, match="engine must be one of"):
        Recognizer.from_pretrained(tiny_weights, engine="tensorrt")
    with pytest.raises(ValueError, match="onnx engine does not run bf16"):
        Recognizer.from_pretrained(tiny_weights, precision="bf16", engine="onnx")
    assert Recognizer.from_pretrained(tiny_weights, precision="bf16").engine == "torch"
    assert Recognizer.from_pretrained(tiny_weights, precision="fp32").engine == "onnx"
    monkeypatch.setattr(onnx_trunk, "available", lambda: False)
    with pytest.raises(CaptchaError, match="needs onnxruntime"):
        Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    assert Recognizer.from_pretrained(tiny_weights, precision="fp32").engine == "torch"


def test_a_trunk_that_will_not_export_falls_back_to_pytorch(tiny_weights, cache, monkeypatch, sample_images):
    def broken(*args):
        raise RuntimeError("unsupported operator")
    monkeypatch.setattr(onnx_trunk, "export", broken)
    with pytest.warns(RuntimeWarning, match="reading with PyTorch instead"):
        rec = Recognizer.from_pretrained(tiny_weights, precision="fp32")
    assert rec.engine == "torch" and len(rec.predict(sample_images[0]).one_go.text) == TINY_SPEC.length
    with pytest.raises(CaptchaError, match="cannot run this trunk in ONNX Runtime: unsupported operator"):
        Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
