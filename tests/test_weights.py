import json

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from captcha.errors import WeightsError
from captcha.models import build_model
from captcha.spec import CaptchaSpec
from captcha.weights import FILENAMES, load_weights, read_info, save_weights

from conftest import TINY_SPEC


@pytest.mark.parametrize("form", ["one_go", "sequential"])
def test_round_trip_fp16_with_metadata(tmp_path, form):
    torch.manual_seed(1)
    model = build_model(form, TINY_SPEC, arch="resnet18").eval()
    path = save_weights(tmp_path / FILENAMES[form], model, form, "resnet18", summary={"steps": 3})
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
        assert all(f.get_tensor(k).dtype in (torch.float16, torch.int64) for k in f.keys())
    assert meta["form"] == form and meta["arch"] == "resnet18"
    assert json.loads(meta["spec"])["alphabet"] == TINY_SPEC.alphabet
    loaded, info = load_weights(path)
    assert info.spec == TINY_SPEC and info.summary == {"steps": 3} and not loaded.training
    x = torch.randn(2, 3, TINY_SPEC.height, TINY_SPEC.width)
    with torch.no_grad():
        assert torch.allclose(model(x), loaded(x), atol=0.05)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_truncated_file_is_refused(tiny_weights, tmp_path):
    data = (tiny_weights / FILENAMES["one_go"]).read_bytes()
    for cut in (100, len(data) // 2, len(data) - 10):
        broken = tmp_path / "one_go.safetensors"
        broken.write_bytes(data[:cut])
        with pytest.raises(WeightsError, match="truncated or corrupted"):
            load_weights(broken)


def test_foreign_safetensors_is_refused(tmp_path):
    path = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    with pytest.raises(WeightsError, match="not a captcha-recognizer weights file"):
        read_info(path)


def test_tensors_that_do_not_match_their_metadata_are_refused(tmp_path):
    # resnet18 tensors, labelled as a resnet34 model
    model = build_model("one_go", TINY_SPEC, arch="resnet18")
    path = save_weights(tmp_path / "m.safetensors", model, "one_go", "resnet34")
    with pytest.raises(WeightsError, match="do not match"):
        load_weights(path)


def test_weights_for_another_alphabet_are_refused(tiny_weights):
    other = CaptchaSpec(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", length=6)
    with pytest.raises(WeightsError, match="were asked for"):
        load_weights(tiny_weights / FILENAMES["one_go"], expect_spec=other)


def test_missing_file_and_wrong_form(tiny_weights, tmp_path):
    with pytest.raises(WeightsError, match="no such weights file"):
        load_weights(tmp_path / "none.safetensors")
    with pytest.raises(WeightsError, match="holds the one_go form"):
        load_weights(tiny_weights / FILENAMES["one_go"], expect_form="sequential")


def test_failed_write_keeps_the_old_file(tiny_weights, tmp_path, monkeypatch):
    import captcha.weights as weights
    target = tmp_path / "one_go.safetensors"
    target.write_bytes((tiny_weights / FILENAMES["one_go"]).read_bytes())
    before = target.read_bytes()

    def crash(state, filename, metadata=None):
        open(filename, "wb").write(b"half a fi")
        raise KeyboardInterrupt  # killed mid-write
    monkeypatch.setattr(weights, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_weights(target, build_model("one_go", TINY_SPEC, arch="resnet18"), "one_go", "resnet18")
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == [target.name]
