"""recipes/imagecaptcha/posthoc.py: shifted reads and oracle logit biases of weights, without retraining."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from captcha import Recognizer
from captcha.synth import write_folder

from conftest import ROOT, TINY_SPEC, subprocess_env

SCRIPT = ROOT / "recipes" / "imagecaptcha" / "posthoc.py"
spec_ = importlib.util.spec_from_file_location("posthoc", SCRIPT)
posthoc = importlib.util.module_from_spec(spec_)
spec_.loader.exec_module(posthoc)


def test_unshifted_read_is_the_recognizers_own_and_shifts_move_the_content(sample_images):
    rec = Recognizer.from_pretrained(ROOT / "weights")
    shifts = posthoc.shift_list([3])
    assert shifts == [(0, 0), (3, 0), (-3, 0), (0, 3), (0, -3)]
    probs = posthoc.shifted_probs(rec, sample_images, shifts, batch=16)
    preds = rec.predict_batch(sample_images)
    for form, p in probs.items():
        assert p.shape == (5, len(sample_images), 5, 62)
        texts = ["".join(rec.spec.alphabet[i] for i in row) for row in p[0].argmax(-1)]
        assert texts == [getattr(pred, form).text for pred in preds]
        conf = [[c.confidence for c in getattr(pred, form).chars] for pred in preds]
        np.testing.assert_allclose(p[0].max(-1), conf, atol=1e-4)
        assert not np.allclose(p[1], p[0], atol=1e-3)  # a shifted read is another read
    truth = np.array([rec.spec.encode(p.stem.split("_")[0]) for p in sample_images])
    result = posthoc.report(probs, shifts, truth, rec.spec.alphabet, [3])
    for form, r in result["forms"].items():
        right = sum(getattr(pred, form).text == p.stem.split("_")[0] for pred, p in zip(preds, sample_images))
        assert r["unshifted"]["string_accuracy"] == pytest.approx(right / len(sample_images))
        assert r["single_shift"]["0,0"] == r["unshifted"]["string_accuracy"]
        assert set(r["averaged"]) == {"vertical 3", "horizontal 3", "all 4 at 3", "all shifts"}


def test_oracle_biases_undo_a_systematic_confusion_and_only_that():
    """Class 1 narrowly beats the true class 0 everywhere: a bias on 0 or 1 fixes every string."""
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, (200, 3))
    logits = np.where(np.eye(4)[truth] > 0, 3.0, 0.0) + rng.normal(0, 0.05, (200, 3, 4))
    logits[..., 1] += np.where(truth == 0, 3.2, 0.0)  # '1' read wherever '0' was drawn
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    before = posthoc.accuracy(probs, truth)
    assert before["char_accuracy"] < 0.85
    offsets, after = posthoc.oracle_biases(probs, truth, "0123")
    assert after == {"string_accuracy": 1.0, "char_accuracy": 1.0}
    assert set(offsets) <= {"0", "1"} and offsets


def test_command_line_writes_a_report(tiny_weights, tmp_path):
    write_folder(tmp_path / "set", 12, seed=3, alphabet=TINY_SPEC.alphabet, length=TINY_SPEC.length)
    out = tmp_path / "posthoc.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--weights", str(tiny_weights), "--folder",
                             str(tmp_path / "set"), "--shift", "1", "--out", str(out)],
                            capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert report["images"] == 12 and len(report["shifts"]) == 5
    assert set(report["forms"]) == {"one_go", "sequential"}
    assert "| one_go | unshifted | 1 |" in result.stdout and "oracle biases" in result.stdout

    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run([sys.executable, str(SCRIPT), "--weights", str(tiny_weights), "--folder", str(empty),
                             "--out", str(out)], capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert result.returncode != 0 and "no images named by their answers" in result.stderr and "Traceback" not in result.stderr
