"""The only code that reads or writes weight files.

A weights file is a safetensors file (never pickle) whose metadata makes it self-describing:
form, timm arch, head config, the CAPTCHA spec, a short training summary and, once fitted, the
calibration of its confidences (captcha/calibration.py). Loading
rebuilds the model from that metadata and checks every tensor against it, so a truncated,
foreign or mismatched file fails with a message instead of a half-loaded model.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from .errors import SpecError, WeightsError
from .models import build_model, form_name
from .spec import CaptchaSpec

FORMAT = "captcha-recognizer"
FORMAT_VERSION = "1"
FILENAMES = {"one_go": "one_go.safetensors", "sequential": "sequential.safetensors"}
SHIPPED = Path(__file__).resolve().parent.parent / "weights"  # the weights this checkout ships


@dataclass
class WeightsInfo:
    """What a weights file says about itself."""

    form: str
    arch: str
    spec: CaptchaSpec
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    path: Path | None = None
    calibration: dict = field(default_factory=dict)  # {} when never fitted: temperature 1, no threshold
    int8: dict = field(default_factory=dict)  # the int8 trunk's ranges and self-check (captcha/int8.py), if made

    @property
    def temperature(self) -> float:
        return float(self.calibration.get("temperature", 1.0))


def save_weights(path, model: torch.nn.Module, form: str, arch: str, summary: dict | None = None,
                 dtype: torch.dtype = torch.float16) -> Path:
    """Write `model` atomically (temp file + rename): a killed run never leaves half a file."""
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().to("cpu")
        if tensor.is_floating_point():
            tensor = tensor.to(dtype)
        state[key] = tensor.contiguous()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "form": form_name(form),
        "arch": arch,
        "spec": model.spec.to_json(),
        "config": json.dumps(getattr(model, "config", {}), sort_keys=True),
        "summary": json.dumps(summary or {}, sort_keys=True),
    }
    return _write(Path(path), state, metadata)


def write_calibration(path, calibration: dict) -> Path:
    """Store `calibration` in an existing weights file's metadata (tensors unchanged)."""
    return update_metadata(path, calibration=calibration)


def update_metadata(path, **entries: dict) -> Path:
    """Store JSON `entries` in an existing weights file's metadata; its tensors are written back
    unchanged (same names, dtypes and bytes), atomically."""
    read_info(path)  # refuse anything that is not a readable weights file first
    with safe_open(str(path), framework="pt") as f:
        metadata = dict(f.metadata())
    metadata.update({key: json.dumps(value, sort_keys=True) for key, value in entries.items()})
    return _write(Path(path), load_file(str(path)), metadata)


def _write(path: Path, state: dict, metadata: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        save_file(state, str(tmp), metadata=metadata)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # an ordinary file, not the temp file's 0600
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_info(path) -> WeightsInfo:
    """Read and validate a weights file's metadata without building the model."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such weights file; train one with train.py "
                           f"or point to a folder holding {' / '.join(FILENAMES.values())}")
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: not a readable safetensors file (truncated or corrupted?): {e}") from None
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: a safetensors file, but not a {FORMAT} weights file "
                           f"(its metadata has no form/arch/spec); was it made by train.py?")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise WeightsError(f"{path}: weights format version {metadata.get('format_version')!r} "
                           f"is not supported (expected {FORMAT_VERSION}); upgrade the package")
    try:
        info = WeightsInfo(
            form=form_name(metadata["form"]),
            arch=metadata["arch"],
            spec=CaptchaSpec.from_json(metadata["spec"]),
            config=json.loads(metadata.get("config") or "{}"),
            summary=json.loads(metadata.get("summary") or "{}"),
            path=path,
            calibration=json.loads(metadata.get("calibration") or "{}"),
            int8=json.loads(metadata.get("int8") or "{}"),
        )
        if not 0 < info.temperature < float("inf"):
            raise ValueError(f"calibration temperature {info.temperature}")
        return info
    except (KeyError, ValueError, TypeError, AttributeError, SpecError) as e:
        raise WeightsError(f"{path}: its metadata is damaged ({e})") from None


def load_weights(path, expect_form: str | None = None, expect_spec: CaptchaSpec | None = None,
                 device: str | torch.device = "cpu") -> tuple[torch.nn.Module, WeightsInfo]:
    """Rebuild the model a weights file describes and load it, checking every tensor."""
    info = read_info(path)
    if expect_form and info.form != form_name(expect_form):
        raise WeightsError(f"{path}: holds the {info.form} form, expected {form_name(expect_form)}")
    if expect_spec is not None:
        check_spec(info, expect_spec)
    try:
        model = build_model(info.form, info.spec, arch=info.arch, **info.config)
    except Exception as e:  # unknown arch, bad config: the file names something we cannot build
        raise WeightsError(f"{path}: cannot build {info.form} model {info.arch!r} it describes: {e}") from None
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise WeightsError(f"{path}: tensors cannot be read (truncated or corrupted?): {e}") from None
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or wrong_shape:
        parts = []
        for what, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                parts.append(f"{len(keys)} {what} (e.g. {', '.join(keys[:3])})")
        raise WeightsError(f"{path}: tensors do not match the {info.arch} {info.form} model its metadata "
                           f"describes: {'; '.join(parts)}")
    model.load_state_dict(state)
    return model.to(device).eval(), info


def check_spec(info: WeightsInfo, spec: CaptchaSpec) -> None:
    """Refuse weights made for another alphabet or length (input size may differ)."""
    if info.spec.alphabet != spec.alphabet or info.spec.lengths != spec.lengths:
        raise WeightsError(
            f"{info.path}: these weights read {info.spec.lengths} characters of {info.spec.alphabet!r}, "
            f"but {spec.lengths} characters of {spec.alphabet!r} were asked for; "
            f"train new weights for that alphabet and length (train.py --alphabet/--length)")


def find_weights(folder) -> dict[str, Path]:
    """The weights files present in `folder`, by form."""
    folder = Path(folder)
    return {form: folder / name for form, name in FILENAMES.items() if (folder / name).is_file()}
