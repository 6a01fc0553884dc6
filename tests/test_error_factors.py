"""recipes/imagecaptcha/error_factors.py: misreadings counted against how each character was drawn."""
from __future__ import annotations

import json
import subprocess
import sys

from conftest import ROOT

SCRIPT = ROOT / "recipes" / "imagecaptcha" / "error_factors.py"


def char(c, size, **kw):
    return {"c": c, "size": size, "angle": kw.get("angle", 5.0), "warp_x": [0.1, 0.1], "warp_y": [0.1, 0.1],
            "space_before": False, "box": [0, 0, 1, 1], "opacity": 1.0, "ink": 100,
            "noise": kw.get("noise", 0.0), "neighbours": 0.0}


def run(tmp_path, images, errors, count):
    params, graded = tmp_path / "params.jsonl", tmp_path / "eval.json"
    params.write_text("".join(json.dumps(i) + "\n" for i in images))
    graded.write_text(json.dumps({"one_go": {"count": count, "errors": errors}}))
    return subprocess.run([sys.executable, str(SCRIPT), "--params", str(params), "--eval", str(graded)],
                          capture_output=True, text=True, timeout=60)


def test_counts_misread_characters_by_factor(tmp_path):
    images = [
        {"file": "vab12.png", "label": "vab12", "chars": [char("v", 42), char("a", 42), char("b", 50),
                                                          char("1", 56), char("2", 56, noise=0.1)]},
        {"file": "O0xyz.png", "label": "O0xyz", "chars": [char("O", 42), char("0", 50), char("x", 50),
                                                          char("y", 56, angle=-25.0), char("z", 56)]},
    ]
    errors = [{"file": "vab12.png", "label": "vab12", "read": "Vab1Z"},
              {"file": "O0xyz.png", "label": "O0xyz", "read": "00xyz"}]
    result = run(tmp_path, images, errors, count=2)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    # v->V and O->0 at 42, 2->Z at 56; the pair characters are v, O, 0, x, z
    assert "one_go: 3 of 10 characters misread; 2 of them are among the 5 case-pair characters" in out
    assert "| 42 | 3 | 2 | 66.67% | 2 | 2 | 100.00% |" in out
    assert "| 50 | 3 | 0 | 0.00% | 2 | 0 | 0.00% |" in out
    assert "| 56 | 4 | 1 | 25.00% | 1 | 0 | 0.00% |" in out
    assert "| 0.05-0.15 | 1 | 1 | 100.00% |" in out  # the noise-covered '2'
    assert "| 20-30 | 1 | 0 | 0.00% |" in out          # the tilted 'y'


def test_refuses_params_of_another_set(tmp_path):
    images = [{"file": "abcde.png", "label": "abcde", "chars": [char(c, 42) for c in "abcde"]}]
    result = run(tmp_path, images, [], count=2000)
    assert result.returncode != 0 and "2000 images graded" in result.stderr
