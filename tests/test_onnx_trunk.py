"""The ONNX Runtime engine: same readings as PyTorch, exported once and cached, clear refusals."""
from __future__ import annotations

import pytest
import torch

from captcha import onnx_trunk
from captcha.errors import CaptchaError
from captcha.models import feature_shape
from captcha.recognizer import Recognizer
from captcha.spec import CaptchaSpec
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

    def run():
        return torch.from_numpy(onnx_trunk.session(onnx_trunk.load_or_export(trunk, CHW)).run(None, {"x": x.numpy()})[0])
    first = run()
    files = list(cache.glob("*.onnx"))
    assert len(files) == 1 and not list(cache.glob("*.part"))
    with torch.no_grad():
        assert first == pytest.approx(trunk(x), abs=1e-4)

    def no_export(*args):
        raise AssertionError("exported again although the cache holds this trunk")
    monkeypatch.setattr(onnx_trunk, "export", no_export)
    assert run() == pytest.approx(first, abs=1e-6)

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


@pytest.mark.parametrize("attention,head", [("strips", "flat"), ("lengths", "lengths"), ("chain", "flat")])
def test_a_reader_runs_trunk_and_heads_in_one_graph_as_pytorch_does(attention, head):
    """Fixed lengths and ranges alike: the same logits and maps along each trunk graph it holds."""
    from captcha.models import build_model
    spec = CaptchaSpec(alphabet="0123456789", length="2-4" if attention != "strips" else 4, height=32, width=96)
    torch.manual_seed(0)
    joint = build_model("joint", spec, arch="resnet18", attention=attention, head=head).eval()
    models = {form: joint.part(form) for form in ("one_go", "sequential")}
    x = torch.randn(3, 3, spec.height, spec.width)
    graph = onnx_trunk.load_or_export(joint.trunk, (3, spec.height, spec.width))
    reader = onnx_trunk.OnnxReader({"fp32": graph, "again": graph}, models, feature_shape(joint.trunk, spec))
    assert reader.heads_in_graph
    with torch.no_grad():
        features = joint.trunk(x)
        want = {"one_go": (models["one_go"].read(features), None),
                "sequential": models["sequential"].read_with_maps(features)}
    for path in ("fp32", "again"):
        got = reader(x, path)
        assert set(got) == {"one_go", "sequential"}
        for form, (logits, maps) in got.items():
            assert logits == pytest.approx(want[form][0], abs=1e-4)
            assert (maps is None) == (want[form][1] is None)
            if maps is not None:
                assert maps == pytest.approx(want[form][1], abs=1e-5)
    alone = onnx_trunk.OnnxReader({"fp32": graph}, {"sequential": models["sequential"]}, feature_shape(joint.trunk, spec))
    assert list(got := alone(x)) == ["sequential"] and got["sequential"][0] == pytest.approx(want["sequential"][0], abs=1e-4)


def test_the_onnx_engine_reads_without_pytorch_s_heads(tiny_weights, sample_images, monkeypatch):
    rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    assert len(rec.trunks) == 2 and all(r.heads_in_graph for r in rec.trunks.values())  # a trunk each
    calls = []
    for reader in rec.trunks.values():
        monkeypatch.setitem(reader.sessions, "fp32", _Counting(reader.sessions["fp32"], calls))
    for model in rec.models.values():  # PyTorch's heads must not run
        monkeypatch.setattr(model, "read", None, raising=False)
        monkeypatch.setattr(model, "read_with_maps", None, raising=False)
    assert rec.predict(sample_images[0]).sequential.maps is not None
    assert sorted(calls) == [["one_go.logits"], ["sequential.logits", "sequential.maps"]]


def test_heads_that_will_not_export_stay_in_pytorch(tiny_weights, sample_images, monkeypatch):
    want = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="torch").predict(sample_images[0])
    def broken(*args, **kwargs):
        raise RuntimeError("unsupported operator")
    monkeypatch.setattr(onnx_trunk, "heads_graph", broken)
    with pytest.warns(RuntimeWarning, match="PyTorch runs them"):
        rec = Recognizer.from_pretrained(tiny_weights, precision="fp32", engine="onnx")
    assert rec.engine == "onnx" and not any(r.heads_in_graph for r in rec.trunks.values())
    got = rec.predict(sample_images[0])
    assert (got.one_go.text, got.sequential.text) == (want.one_go.text, want.sequential.text)
    assert got.one_go.confidence == pytest.approx(want.one_go.confidence, rel=1e-3, abs=1e-6)


class _Counting:
    """An ONNX Runtime session that notes the outputs each run asks for."""

    def __init__(self, session, calls):
        self.session, self.calls = session, calls

    def run(self, names, feeds):
        self.calls.append(names)
        return self.session.run(names, feeds)
