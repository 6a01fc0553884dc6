"""recipes/imagecaptcha/gpu_round.py and stream.py, the GPU round's path, run here on the CPU:
pack -> train (time-boxed, fed by stream.py workers) -> unpack -> the package loads the result.

The PyPI `captcha` library cannot be imported in the project's environment (same name as our
package), so the workers get a stand-in library folder: the same interface (`__version__`,
`captcha.image.ImageCaptcha(width, height).generate_image(text)`, drawing from `random`).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from captcha import Recognizer
from captcha.models import Joint
from captcha.spec import CaptchaSpec
from captcha.weights import FILENAMES, load_weights, save_weights
from conftest import ROOT, subprocess_env

RECIPE = ROOT / "recipes" / "imagecaptcha"
SPEC = CaptchaSpec(alphabet="0123456789abcdef", length=4, height=96, width=256, crop=(0, 0.3125, 1, 0.6875))

FAKE_IMAGE = '''
import random
from PIL import Image, ImageDraw, ImageFont

class ImageCaptcha:
    def __init__(self, width=160, height=60, fonts=None, font_sizes=None):
        self._size = (width, height)
        self._font_sizes = font_sizes or (12,)

    def generate_image(self, chars):
        image = Image.new("RGB", self._size, tuple(random.randint(200, 255) for _ in range(3)))
        draw = ImageDraw.Draw(image)
        for k, c in enumerate(chars):
            font = ImageFont.load_default(size=random.choice(self._font_sizes))
            draw.text((30 + 50 * k, 110 + random.randint(-8, 8)), c, fill=(20, 20, 20), font=font)
        return image
'''


@pytest.fixture
def fake_library(tmp_path) -> Path:
    package = tmp_path / "lib" / "captcha"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.0-test"\n')
    (package / "image.py").write_text(FAKE_IMAGE)
    return package.parent


def run(*args, timeout=240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(RECIPE / "gpu_round.py"), *map(str, args)], capture_output=True,
                          text=True, env=subprocess_env(), timeout=timeout, cwd=ROOT)


def joint_weights(folder: Path, seed: int = 0) -> Joint:
    torch.manual_seed(seed)
    model = Joint(SPEC, "resnet18", one_go_channels=16)
    for form in FILENAMES:
        save_weights(folder / FILENAMES[form], model.part(form), form, "resnet18")
    return model


def test_stream_sends_generate_py_labels_and_pixels(fake_library):
    sys.path.insert(0, str(RECIPE))
    try:
        import generate
    finally:
        sys.path.remove(str(RECIPE))

    def stream(*extra):
        return subprocess.run([sys.executable, "-I", str(RECIPE / "stream.py"), "--lib", str(fake_library),
                               "--base", "7", "--count", "3", "--alphabet", SPEC.alphabet, "--length", "4", *extra],
                              capture_output=True, timeout=60, check=True).stdout
    out = stream()
    record = 4 + 96 * 256 * 3
    assert len(out) == 3 * record
    labels = [out[i * record: i * record + 4].decode() for i in range(3)]
    assert labels == [generate.make_label(generate.image_seed(7, i), SPEC.alphabet, 4) for i in range(3)]
    pixels = torch.frombuffer(bytearray(out[4:record]), dtype=torch.uint8)
    assert pixels.float().std() > 5  # text was drawn into the band, not a blank strip

    big = stream("--font-sizes", "40,40")  # --font-sizes reaches ImageCaptcha: larger glyphs, more ink
    assert big[:4] == out[:4]
    ink = lambda raw: int((torch.frombuffer(bytearray(raw[4:record]), dtype=torch.uint8) < 100).sum())  # noqa: E731
    assert ink(big) > 2 * ink(out)


def test_pack_train_unpack(tmp_path, fake_library):
    joint_weights(tmp_path / "before")
    packed = tmp_path / "init.safetensors"
    result = run("pack", tmp_path / "before", "--out", packed)
    assert result.returncode == 0, result.stderr
    with safe_open(str(packed), "pt") as f:
        keys = list(f.keys())
    assert any(k.startswith("one_go.trunk.") for k in keys) and not any(k.startswith("sequential.trunk.") for k in keys)
    assert packed.stat().st_size < sum((tmp_path / "before" / n).stat().st_size for n in FILENAMES.values())

    out = tmp_path / "run"
    result = run("train", "--init", packed, "--lib", f"fake={fake_library}", "--device", "cpu", "--seconds", 4,
                 "--batch-size", 4, "--val", 8, "--workers", 1, "--buffer", 64, "--eval-seconds", 1000,
                 "--font-sizes", "12,16", "--out", out)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "final after" in result.stdout and "font sizes 12,16" in result.stdout
    parts = sorted(out.glob("joint.safetensors.part*"))
    assert parts and all(p.stat().st_size <= 15 * 2**20 for p in parts)

    result = run("unpack", out, "--out", tmp_path / "after")
    assert result.returncode == 0, result.stderr
    rec = Recognizer.from_pretrained(tmp_path / "after")
    assert rec.shared_trunk and rec.spec == SPEC
    info = rec.infos["one_go"]
    assert info.summary["trained"] == "joint (gpu_round.py)" and info.summary["steps"] >= 1
    before, _ = load_weights(tmp_path / "before" / FILENAMES["one_go"])
    assert not torch.equal(before.head[2].weight, rec.models["one_go"].head[2].weight)  # it trained
    prediction = rec.predict(ROOT / "data" / sorted(p.name for p in (ROOT / "data").glob("*.png"))[0])
    assert len(prediction.one_go.text) == 4 and len(prediction.sequential.text) == 4


def test_pack_refuses_forms_that_do_not_share_a_trunk(tmp_path):
    joint_weights(tmp_path / "w", seed=0)
    other = Joint(SPEC, "resnet18", one_go_channels=16)  # another random trunk
    save_weights(tmp_path / "w" / FILENAMES["sequential"], other.part("sequential"), "sequential", "resnet18")
    result = run("pack", tmp_path / "w", "--out", tmp_path / "x.safetensors")
    assert result.returncode != 0 and "do not share their trunk" in result.stderr
    assert not (tmp_path / "x.safetensors").exists()


def test_train_says_which_worker_failed(tmp_path, fake_library):
    joint_weights(tmp_path / "w")
    assert run("pack", tmp_path / "w", "--out", tmp_path / "init.safetensors").returncode == 0
    (fake_library / "captcha" / "image.py").write_text("raise ImportError('broken on purpose')\n")
    result = run("train", "--init", tmp_path / "init.safetensors", "--lib", f"fake={fake_library}", "--device", "cpu",
                 "--seconds", 2, "--val", 4, "--workers", 1, "--buffer", 32, "--out", tmp_path / "run", timeout=120)
    assert result.returncode != 0
    assert "validation worker for captcha fake drew 0 of 4 images" in result.stderr
