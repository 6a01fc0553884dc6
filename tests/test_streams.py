"""Images drawn while training runs: recipes/imagecaptcha/stream.py's records, read by captcha.streams
and trained on by train.py --stream, here on the CPU with a tiny model; and the recipe's carry.py,
which moves weights to and from the GPU machine.

The PyPI `captcha` library cannot be imported in the project's environment (same name as our
package), so the workers get a stand-in library folder: the same interface (`__version__`,
`captcha.image.ImageCaptcha(width, height).generate_image(text)`, drawing from `random`).
"""
from __future__ import annotations

import io
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors import safe_open

from captcha import Recognizer
from captcha.errors import DatasetError
from captcha.models import Joint
from captcha.spec import CaptchaSpec
from captcha.streams import read_all, read_records, write_record
from captcha.weights import FILENAMES, save_weights
from conftest import ROOT, subprocess_env

RECIPE = ROOT / "recipes" / "imagecaptcha"
SPEC = CaptchaSpec(alphabet="0123456789abcdef", length=4, height=24, width=64, crop=(0, 0.3125, 1, 0.6875))

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


def worker(lib: Path, base: int, count: int | None = None, *extra) -> str:
    command = f"{sys.executable} -I {RECIPE / 'stream.py'} --lib {lib} --base {base} --alphabet {SPEC.alphabet} --length 4"
    return " ".join([command, *(["--count", str(count)] if count else []), *extra])


def test_records_round_trip_through_the_one_geometry():
    image = Image.new("RGB", (256, 256), (250, 240, 230))
    image.paste((0, 0, 0), (0, 100, 256, 150))
    buf = io.BytesIO()
    write_record(buf, "0a1b", image)
    write_record(buf, "ffff", image)
    buf.seek(0)
    records = list(read_records(buf, SPEC))
    assert len(records) == 2
    pixels, targets = records[0]
    assert pixels.dtype == torch.uint8 and torch.equal(pixels, SPEC.geometry(image))
    assert targets.tolist() == SPEC.encode("0a1b")


def test_a_record_outside_the_spec_or_cut_short_is_a_clear_error():
    buf = io.BytesIO()
    write_record(buf, "0a1z", Image.new("RGB", (8, 8)))
    with pytest.raises(DatasetError, match="outside the alphabet"):
        list(read_records(io.BytesIO(buf.getvalue()), SPEC, name="cmd"))
    with pytest.raises(DatasetError, match="middle of a record"):
        list(read_records(io.BytesIO(buf.getvalue()[:-5]), SPEC, name="cmd"))


def test_stream_sends_generate_py_labels_and_the_librarys_pixels(fake_library):
    from recipes.imagecaptcha import generate
    pixels, targets = read_all([worker(fake_library, 7, 3)], SPEC)
    assert [SPEC.decode(t) for t in targets] == [generate.make_label(generate.image_seed(7, i), SPEC.alphabet, 4)
                                                 for i in range(3)]
    assert pixels.shape == (3, 3, SPEC.height, SPEC.width) and pixels.float().std() > 5  # text in the band

    big, _ = read_all([worker(fake_library, 7, 3, "--font-sizes", "40,40")], SPEC)  # reaches ImageCaptcha
    assert int((big < 100).sum()) > 2 * int((pixels < 100).sum())


def test_generate_py_draws_a_length_range_and_fixed_lengths_as_before():
    from recipes.imagecaptcha import generate
    seeds = [generate.image_seed(3, i) for i in range(200)]
    fixed = [generate.make_label(s, "abc", 5) for s in seeds]
    def before(seed):  # the fixed-length rule the shipped weights' sets were drawn with
        rng = random.Random(f"label:{seed}")
        return "".join(rng.choice("abc") for _ in range(5))
    assert fixed == [before(s) for s in seeds]
    assert generate.parse_length("5") == 5 and generate.parse_length("4-8") == (4, 8)
    ranged = [generate.make_label(s, "abc", (4, 8)) for s in seeds]
    assert {len(x) for x in ranged} == {4, 5, 6, 7, 8}
    assert ranged == [generate.make_label(s, "abc", (4, 8)) for s in seeds]  # deterministic
    with pytest.raises(ValueError):
        generate.parse_length("8-4")


def test_a_failing_stream_command_is_named(fake_library):
    (fake_library / "captcha" / "image.py").write_text("raise ImportError('broken on purpose')\n")
    with pytest.raises(DatasetError, match="failed"):
        read_all([worker(fake_library, 7, 3)], SPEC)


def train(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=subprocess_env(), cwd=ROOT)


def test_train_py_trains_both_forms_on_streamed_images(tmp_path, fake_library):
    out = tmp_path / "run"
    result = train("--stream", worker(fake_library, 10), "--stream", worker(fake_library, 11),
                   "--val-stream", worker(fake_library, 90, 8), "--form", "joint", "--arch", "resnet18",
                   "--alphabet", SPEC.alphabet, "--length", 4, "--size", "24x64", "--crop", "0,0.3125,1,0.6875",
                   "--batch-size", 4, "--steps", 6, "--eval-every", 3, "--stream-buffer", 64, "--threads", 1,
                   "--workers", 0, "--out", out)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stream: 2 worker(s), buffer of 64 images" in result.stdout + result.stderr
    history = json.loads((out / "metrics.json").read_text())["forms"]["joint"]["history"]
    assert [h["step"] for h in history] == [3, 6] and history[-1]["count"] == 8
    rec = Recognizer.from_pretrained(out)
    assert rec.shared_trunk and rec.spec == SPEC


def test_a_stream_that_dies_before_training_is_a_clear_error(tmp_path, fake_library):
    broken = tmp_path / "broken"
    broken.mkdir()
    result = train("--stream", worker(broken, 10), "--val-stream", worker(fake_library, 90, 4), "--arch", "resnet18",
                   "--alphabet", SPEC.alphabet, "--length", 4, "--size", "24x64", "--steps", 2, "--workers", 0,
                   "--out", tmp_path / "run")
    assert result.returncode == 2 and "training streams sent 0 of" in result.stderr
    assert "Traceback" not in result.stderr


def carry(*args):
    return subprocess.run([sys.executable, "-m", "recipes.imagecaptcha.carry", *map(str, args)], capture_output=True,
                          text=True, timeout=120, env=subprocess_env(), cwd=ROOT)


def test_carry_packs_forms_with_one_trunk_into_small_parts_and_back(tmp_path):
    torch.manual_seed(0)
    model = Joint(SPEC, "resnet18", one_go_channels=16)
    for form in FILENAMES:
        save_weights(tmp_path / "w" / FILENAMES[form], model.part(form), form, "resnet18", summary={"note": form})
    (tmp_path / "w" / "metrics.json").write_text("{}")
    assert carry("pack", tmp_path / "w", tmp_path / "parts").returncode == 0
    parts = list((tmp_path / "parts").glob("joint.safetensors.part*"))
    assert parts and sum(p.stat().st_size for p in parts) < 0.7 * sum(
        (tmp_path / "w" / n).stat().st_size for n in FILENAMES.values())  # the trunk once
    assert carry("unpack", tmp_path / "parts", tmp_path / "back").returncode == 0
    for name in FILENAMES.values():
        with safe_open(str(tmp_path / "w" / name), "pt") as a, safe_open(str(tmp_path / "back" / name), "pt") as b:
            assert a.metadata() == b.metadata() and sorted(a.keys()) == sorted(b.keys())
            assert all(torch.equal(a.get_tensor(k), b.get_tensor(k)) for k in a.keys())
    assert (tmp_path / "back" / "metrics.json").exists()
    assert Recognizer.from_pretrained(tmp_path / "back").shared_trunk


def test_carry_refuses_forms_that_do_not_share_a_trunk(tmp_path):
    torch.manual_seed(0)
    for form in FILENAMES:  # two random trunks
        save_weights(tmp_path / "w" / FILENAMES[form], Joint(SPEC, "resnet18", one_go_channels=16).part(form), form,
                     "resnet18")
    result = carry("pack", tmp_path / "w", tmp_path / "parts")
    assert result.returncode != 0 and "do not share their trunk" in result.stderr
