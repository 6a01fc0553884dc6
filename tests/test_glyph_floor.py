"""recipes/imagecaptcha/glyph_floor.py: a dedicated reader of isolated glyphs, beside the shipped model."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from conftest import ROOT, subprocess_env

SCRIPT = ROOT / "recipes" / "imagecaptcha" / "glyph_floor.py"


def write_glyphs(prefix, count, seed, ambiguous=""):
    """glyphs.py's format: 'O' is a ring, '0' a narrower ring, 'x' a cross; `ambiguous` chars are drawn as 'O'."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:64, :48]
    pixels, rows = np.zeros((count, 64, 48), np.uint8), []
    for i in range(count):
        c, size = "O0x"[i % 3], (42, 50, 56)[(i // 3) % 3]
        cy, cx = 32 + rng.integers(-3, 4), 24 + rng.integers(-3, 4)
        if c == "x":
            pixels[i] = 255 * ((abs(abs(yy - cy) - abs(xx - cx)) < 2) & (abs(yy - cy) < 15))
        else:
            r = ((yy - cy) / 18) ** 2 + ((xx - cx) / (14 if c == "O" or c in ambiguous else 8)) ** 2
            pixels[i] = 255 * ((r > 0.6) & (r < 1.0))
        rows.append(f"{c} {size}\n")
    pixels.tofile(f"{prefix}.u8")
    with open(f"{prefix}.txt", "w") as f:
        f.writelines(rows)


def run(tmp_path, *extra):
    out = tmp_path / "floor.json"
    result = subprocess.run([sys.executable, str(SCRIPT), "--train", str(tmp_path / "train"), "--test",
                             str(tmp_path / "test"), "--epochs", "3", "--batch", "32", "--width", "8",
                             "--eval-every", "20", "--out", str(out), *extra],
                            capture_output=True, text=True, timeout=300, env=subprocess_env())
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text()), result.stdout


def test_reads_distinct_glyphs_and_reports_by_char_and_size(tmp_path):
    write_glyphs(tmp_path / "train", 360, seed=0)
    write_glyphs(tmp_path / "test", 90, seed=1)
    report, out = run(tmp_path)
    assert report["classes"] == "O0x" and report["train_glyphs"] == 360 and report["test_glyphs"] == 90
    assert report["test_error"] < 0.1, report
    assert sum(n for n, _ in report["per_char_size"].values()) == 90
    assert set(report["per_char_size"]) == {f"{c} {s}" for c in "O0x" for s in (42, 50, 56)}
    assert report["curve"][-1]["seen"] == 34 * 32  # ceil(3 * 360 / 32) steps
    assert "| O | 42 | 10 |" in out


def test_indistinguishable_glyphs_are_misread_and_set_beside_the_shipped_model(tmp_path):
    write_glyphs(tmp_path / "train", 360, seed=0, ambiguous="0")
    write_glyphs(tmp_path / "test", 90, seed=1, ambiguous="0")
    params, graded = tmp_path / "params.jsonl", tmp_path / "eval.json"
    params.write_text(json.dumps({"file": "O0xab.png", "label": "O0xab", "chars": [
        {"c": c, "size": s} for c, s in zip("O0xab", (42, 50, 56, 42, 42))]}) + "\n")
    graded.write_text(json.dumps({f: {"count": 1, "errors": [{"file": "O0xab.png", "label": "O0xab", "read": "00xab"}]}
                                  for f in ("one_go", "sequential")}))
    report, out = run(tmp_path, "--classes", "O0", "--params", str(params), "--eval", str(graded))
    assert report["classes"] == "O0" and report["train_glyphs"] == 240 and report["test_glyphs"] == 60
    # '0' drawn exactly like 'O': no reader can beat a coin here (about 30 of 60 wrong)
    assert report["test_error"] > 0.25, report
    assert report["shipped"]["one_go"] == {"0 50": [1, 0], "O 42": [1, 1]}
    rate = {k: e / n for k, (n, e) in report["per_char_size"].items()}
    assert abs(report["implied_full_string"] - (1 - rate["O 42"]) * (1 - rate["0 50"])) < 1e-9
    assert "| O | 42 | 10 |" in out and "| 1 | 1 | 100.0% |" in out


def test_too_short_a_run_is_refused_with_a_message(tmp_path):
    write_glyphs(tmp_path / "train", 60, seed=0)
    write_glyphs(tmp_path / "test", 30, seed=1)
    result = subprocess.run([sys.executable, str(SCRIPT), "--train", str(tmp_path / "train"), "--test",
                             str(tmp_path / "test"), "--epochs", "1", "--batch", "32", "--out", str(tmp_path / "r.json")],
                            capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert result.returncode != 0
    assert "2 training step(s); a one-cycle schedule needs at least 4" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "r.json").exists()
