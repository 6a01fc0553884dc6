"""CAPTCHAs of varying length: the spec's range, END in both forms, readings of any length in the
Recognizer, evaluate and the CLI; fixed lengths keep their layout."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, subprocess_env
from captcha.evaluate import align
from captcha.models import FLOOR, OneGo, Sequential, build_model, length_mixture
from captcha.recognizer import Recognizer
from captcha.spec import CaptchaSpec, parse_length
from captcha.weights import FILENAMES, load_weights, read_info, save_weights

RANGE = CaptchaSpec(alphabet="0123456789", length="2-4", height=32, width=96)


def test_one_spelling_of_a_range():
    assert parse_length("4-8") == (4, 8) and parse_length(5) == (5, 5) and parse_length("6") == (6, 6)
    for bad in ("8-4", "four", "4-", "0-3"):
        with pytest.raises(Exception):
            CaptchaSpec(length=bad)
    assert RANGE.length == 4 and RANGE.min_length == 2 and RANGE.variable and RANGE.lengths == "2-4"
    assert json.loads(RANGE.to_json())["length"] == "2-4"
    assert CaptchaSpec.from_json(RANGE.to_json()) == RANGE
    assert "2-4 characters" in RANGE.describe()


def test_fixed_length_json_is_unchanged():
    """The shipped weights' spec JSON: no END, no new keys."""
    fixed = CaptchaSpec()
    assert fixed.to_json() == ('{"alphabet": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz", '
                               '"crop": [0.0, 0.0, 1.0, 1.0], "height": 128, "length": 5, "width": 128}')
    assert fixed.num_classes == 62 and fixed.end is None and not fixed.variable


def test_end_symbol_pads_labels_and_ends_readings():
    assert RANGE.num_classes == 11 and RANGE.end == 10
    assert RANGE.encode("07") == [0, 7, 10, 10]
    assert RANGE.decode([0, 7, 10, 3]) == "07"          # text before the first END
    assert RANGE.read_length([0, 7, 10, 3]) == 3        # the text and its END
    assert RANGE.label_problem("0") == "has 1 characters, expected 2 to 4"
    assert RANGE.label_problem("01234") == "has 5 characters, expected 2 to 4"


def test_readings_stop_at_end_and_their_confidence_counts_it():
    logits = torch.full((1, 4, 11), -20.0)
    for position, cls in enumerate([3, 5, 10, 7]):  # "35", END, then a stray 7 after it
        logits[0, position, cls] = 0.0
    logits[0, 2, 10], logits[0, 2, 4] = 0.0, -1.0  # END at 2 is less sure
    reading = Recognizer._readings(RANGE, logits.numpy(), None)[0]
    assert reading.text == "35" and [c.char for c in reading.chars] == ["3", "5"]
    p_end = float(torch.softmax(logits[0, 2], -1)[10])
    assert reading.confidence == pytest.approx(p_end * float(torch.softmax(logits[0, 0], -1)[3]) ** 2, rel=1e-5)


def test_both_forms_read_end_and_the_sequential_chain_goes_left_to_right():
    torch.manual_seed(0)
    model = build_model("joint", RANGE, arch="resnet18", attention="chain")
    assert model.one_go.head[-1].out_features == RANGE.length * 11
    assert build_model("sequential", RANGE, arch="resnet18").attention == "strips"  # the default
    seq = model.sequential
    assert seq.attention == "chain" and seq.config["attention"] == "chain"
    logits, maps = seq.forward_with_maps(torch.randn(2, 3, 32, 96))
    assert logits.shape == (2, 4, 11) and torch.allclose(maps.sum((2, 3)), torch.ones(2, 4), atol=1e-5)
    centres = (maps[0].sum(1) * torch.arange(maps.shape[-1])).sum(-1)  # column each position looks at
    assert bool((centres[1:] > centres[:-1]).all())                     # left to right, untrained
    assert Sequential(CaptchaSpec("01", 4), arch="resnet18").attention == "strips"


def test_length_mixture_reads_end_after_the_length_and_never_before():
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 4, 11) * 3                # 2 images, lengths 2/3/4, 4 positions, 10 + END
    certain = torch.tensor([[0.0, FLOOR, FLOOR], [FLOOR, FLOOR, 0.0]]).log_softmax(-1)  # length 2; length 4
    p = length_mixture(certain, logits, RANGE).exp()
    assert torch.allclose(p.sum(-1), torch.ones(2, 4), atol=1e-5)
    assert torch.allclose(p[0, 2:, RANGE.end], torch.ones(2), atol=1e-5)   # a 2-character CAPTCHA ends at 2
    assert bool((p[0, :2, RANGE.end] < 1e-6).all()) and bool((p[1, :, RANGE.end] < 1e-6).all())
    assert torch.allclose(p[1, 3, :10], logits[1, 2, 3, :10].softmax(-1), atol=1e-5)  # its own length's classifier
    halves = torch.tensor([[0.5, 0.5, 1e-12]]).log()     # 2 or 3 characters, even odds: position 2 is END half the time
    assert float(length_mixture(halves, logits[:1], RANGE).exp()[0, 2, RANGE.end]) == pytest.approx(0.5, abs=1e-4)


def test_heads_by_length_are_what_ranges_train_with(tmp_path):
    torch.manual_seed(0)
    model = build_model("joint", RANGE, arch="resnet18", attention="lengths", head="lengths")
    one_go, seq = model.one_go, model.sequential
    assert one_go.config["head"] == "lengths" and seq.config["attention"] == "lengths"
    assert one_go.head[-1].out_features == 3 * 4 * 11 + 3 and seq.position_bias.shape[:2] == (3, 4)
    x = torch.randn(2, 3, 32, 96)
    logits, maps = seq.forward_with_maps(x)
    assert logits.shape == (2, 4, 11) and torch.allclose(maps.sum((2, 3)), torch.ones(2, 4), atol=1e-5)
    assert torch.allclose(one_go(x).exp().sum(-1), torch.ones(2, 4), atol=1e-5)
    for form, module in (("one_go", one_go), ("sequential", seq)):
        path = save_weights(tmp_path / FILENAMES[form], module, form, "resnet18")
        loaded, info = load_weights(path)
        assert info.config == module.config
        module.eval(), loaded.eval()
        assert torch.allclose(loaded(x), module.half().float()(x), atol=1e-4)
    with pytest.raises(ValueError, match="length range"):
        OneGo(CaptchaSpec("01", 4, 32, 96), arch="resnet18", head="lengths")
    with pytest.raises(ValueError, match="length range"):
        Sequential(CaptchaSpec("01", 4, 32, 96), arch="resnet18", attention="lengths")


def test_range_weights_round_trip_and_resize(tmp_path):
    torch.manual_seed(0)
    model = build_model("sequential", RANGE, arch="resnet18", attention="chain")
    path = save_weights(tmp_path / FILENAMES["sequential"], model, "sequential", "resnet18")
    info = read_info(path)
    assert info.spec == RANGE and info.config["attention"] == "chain"
    loaded, _ = load_weights(path)
    assert torch.equal(loaded.step_bias, model.step_bias.half().float())
    wider = build_model("sequential", CaptchaSpec("0123456789", "2-4", 32, 160), arch="resnet18", attention="chain")
    wider.load_resized(loaded.state_dict(), loaded.grid)
    assert wider.step_bias.shape == (2 * wider.grid[1] - 1,)


def test_align_counts_insertions_and_deletions():
    assert align("abcd", "abd") == [("a", "a"), ("b", "b"), ("c", None), ("d", "d")]
    assert align("ab", "axb") == [("a", "a"), (None, "x"), ("b", "b")]


@pytest.fixture(scope="module")
def trained_range(tmp_path_factory):
    """A tiny model trained on generated CAPTCHAs of 2-4 characters, the form chosen for a range (joint)."""
    out = tmp_path_factory.mktemp("range")
    cmd = [sys.executable, str(ROOT / "train.py"), "--synthetic", "256", "--synthetic-val", "32", "--alphabet", "0123",
           "--length", "2-4", "--arch", "resnet18", "--size", "32x96", "--steps", "12",
           "--batch-size", "16", "--workers", "0", "--threads", "1", "--out", str(out / "run")]
    done = subprocess.run(cmd, cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "form auto: joint" in done.stdout + done.stderr
    folder = out / "test"
    subprocess.run([sys.executable, "-m", "captcha", "synth", str(folder), "--count", "24", "--seed", "5",
                    "--alphabet", "0123", "--length", "2-4", "--width", "96", "--height", "32"],
                   cwd=ROOT, env=subprocess_env(), check=True, capture_output=True)
    return out / "run", folder


def test_range_trained_end_to_end(trained_range):
    weights, folder = trained_range
    assert read_info(weights / FILENAMES["one_go"]).config["head"] == "lengths"        # a range's defaults
    assert read_info(weights / FILENAMES["sequential"]).config["attention"] == "lengths"
    rec = Recognizer.from_pretrained(weights, engine="torch", precision="fp32")
    assert rec.spec.lengths == "2-4"
    for prediction in rec.predict_batch(sorted(folder.glob("*.png"))):
        for reading in prediction.readings().values():
            assert len(reading.text) <= 4 and len(reading.chars) == len(reading.text)
            assert set(reading.text) <= set("0123") and 0 <= reading.confidence <= 1


def test_evaluate_reports_cer_and_accuracy_per_length(trained_range, tmp_path):
    weights, folder = trained_range
    report = tmp_path / "eval.json"
    done = subprocess.run([sys.executable, "-m", "captcha", "evaluate", str(folder), "--weights", str(weights),
                           "--json", str(report), "--engine", "torch"],
                          cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "character error rate" in done.stdout and "full-string by label length" in done.stdout
    results = json.loads(report.read_text())
    for form in ("one_go", "sequential"):
        r = results[form]
        assert set(r["by_length"]) <= {"2", "3", "4"} and sum(v["count"] for v in r["by_length"].values()) == 24
        assert 0 <= r["cer"] and r["count"] == 24
