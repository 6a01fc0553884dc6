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


# --- calibration in the metadata ---------------------------------------------------------------

def test_calibration_round_trip_keeps_every_tensor(tiny_weights, tmp_path):
    from safetensors.torch import load_file
    from captcha.weights import write_calibration
    path = tmp_path / "one_go.safetensors"
    path.write_bytes((tiny_weights / FILENAMES["one_go"]).read_bytes())
    before_info, before = read_info(path), load_file(str(path))
    fitted = {"temperature": 0.64, "threshold": 0.91, "answer_threshold": 0.93, "count": 4000, "errors": 118}
    write_calibration(path, fitted)
    info, after = read_info(path), load_file(str(path))
    assert info.calibration == fitted and info.temperature == 0.64
    assert (info.spec, info.summary, info.arch, info.config) == (before_info.spec, before_info.summary,
                                                                 before_info.arch, before_info.config)
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) and before[k].dtype == after[k].dtype for k in before)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temp file left behind


def test_weights_without_calibration_load_as_before(tiny_weights):
    info = read_info(tiny_weights / FILENAMES["sequential"])
    with safe_open(str(info.path), "pt") as f:
        assert "calibration" not in f.metadata()  # as every file written before calibration existed
    assert info.calibration == {} and info.temperature == 1.0


@pytest.mark.parametrize("bad", ['{"temperature": 0}', '{"temperature": -1}', '{"temperature": "hot"}', "not json"])
def test_damaged_calibration_is_refused(tiny_weights, tmp_path, bad):
    from safetensors.torch import load_file
    path = tmp_path / "one_go.safetensors"
    with safe_open(str(tiny_weights / FILENAMES["one_go"]), "pt") as f:
        metadata = dict(f.metadata())
    save_file(load_file(str(tiny_weights / FILENAMES["one_go"])), str(path), metadata={**metadata, "calibration": bad})
    with pytest.raises(WeightsError, match="metadata is damaged"):
        read_info(path)
