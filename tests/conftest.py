"""Shared fixtures: tiny real models (timm resnet18 at a small input) so the suite stays fast."""
from __future__ import annotations

import atexit
import io
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The ONNX engine caches exported trunks under $CAPTCHA_CACHE/onnx: keep the suite's out of the
# user's cache (servers and CLI runs started by tests inherit it, so each tiny trunk is exported once).
os.environ["CAPTCHA_CACHE"] = tempfile.mkdtemp(prefix="captcha-tests-")
atexit.register(shutil.rmtree, os.environ["CAPTCHA_CACHE"], ignore_errors=True)

import torch  # noqa: E402

from captcha.models import build_model  # noqa: E402
from captcha.spec import CaptchaSpec  # noqa: E402
from captcha.weights import FILENAMES, save_weights  # noqa: E402

# One thread: tests share 2 cores with subprocesses (servers, torchrun); oversubscribed
# OpenMP threads are far slower than one.
torch.set_num_threads(1)

TINY_SPEC = CaptchaSpec(alphabet="0123456789abcdef", length=4, height=32, width=64)


def subprocess_env(**extra) -> dict:
    """Environment for child processes: offline, one thread each, the repo importable."""
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    """A weights folder with both forms: resnet18, random init, TINY_SPEC."""
    folder = tmp_path_factory.mktemp("tiny_weights")
    torch.manual_seed(0)
    for form in ("one_go", "sequential"):
        save_weights(folder / FILENAMES[form], build_model(form, TINY_SPEC, arch="resnet18"), form, "resnet18",
                     summary={"note": "random init, for tests"})
    return folder


@pytest.fixture(scope="session")
def calibrated_weights(tiny_weights, sample_images, tmp_path_factory) -> Path:
    """The tiny weights with a calibration in their metadata: temperature 0.25, and thresholds at
    the median confidence over the sample images, so about half of those answers are sure."""
    from captcha.recognizer import Recognizer
    from captcha.weights import write_calibration
    folder = tmp_path_factory.mktemp("calibrated_weights")
    for name in FILENAMES.values():
        shutil.copy(tiny_weights / name, folder / name)
        write_calibration(folder / name, {"temperature": 0.25})
    predictions = Recognizer.from_pretrained(folder).predict_batch(sample_images)
    median = lambda values: sorted(values)[len(values) // 2]
    answer = median([p.answer.confidence for p in predictions])
    for form, name in FILENAMES.items():
        write_calibration(folder / name, {"temperature": 0.25, "answer_threshold": answer,
                                          "threshold": median([getattr(p, form).confidence for p in predictions])})
    return folder


@pytest.fixture(scope="session")
def sample_images() -> list[Path]:
    """The shipped sample CAPTCHAs in data/ (file name = answer)."""
    return sorted(p for p in (ROOT / "data").iterdir() if p.suffix.lower() == ".png")


def zip_of(members: dict[str, bytes]) -> bytes:
    """A zip archive holding `members` (name -> bytes), as a user would upload one."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()
