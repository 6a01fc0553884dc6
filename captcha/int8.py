"""An int8 trunk for ONNX Runtime, made from images of the weights' own style, and checked.

Static quantisation (QDQ, per-channel int8 weights, uint8 activations) needs each activation's
range, measured on images like the ones the weights read. Those ranges are all that is stored, in
the weights' metadata (`int8`), beside the result of the self-check: on images not used to measure
them, how often the int8 trunk's readings agree with fp32, and whether the calibrated confidence
still holds. The int8 graph itself is rebuilt from the fp32 export and the stored ranges when a
Recognizer first asks for it (seconds, once; then cached like the fp32 export), so a fresh clone or
a Space needs no calibration images at start-up and no extra file.

int8 and fp32 readings differ only where a reading is doubtful: on 3600 images of the shipped
weights' two looks, all 28 images whose readings changed had an int8 confidence below 0.77, and 5.8%
of all images fall below 0.9. So the int8 engine re-reads in fp32 every image that a form reads
below REREAD_BELOW: the readings then agree with fp32 (the check measures it) at about the int8 cost.

`reduce_range` (7-bit weights) is on: CPUs without VNNI (AVX2 only) saturate 8-bit products
otherwise, and the graph must read the same everywhere it is used.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from . import onnx_trunk

MIN_AGREEMENT = 0.998  # readings that must agree with fp32 on the check images
MIN_CHECK_IMAGES = 500
REREAD_BELOW = 0.9  # calibrated confidence under which the int8 engine reads an image again in fp32
MAX_ECE_RISE = 0.01  # the answer's calibration error may rise by at most this much
SETTINGS = {"format": "QDQ", "per_channel": True, "reduce_range": True, "activations": "uint8",
            "weights": "int8", "method": "MinMax"}


def _quantize(fp32: bytes, out: Path, cache: Path, reader=None, settings: dict = SETTINGS) -> None:
    """onnxruntime's quantize_static, reading (or, with a reader, writing) the ranges at `cache`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    with tempfile.TemporaryDirectory(prefix="captcha-int8-") as tmp:
        source = Path(tmp) / "fp32.onnx"
        source.write_bytes(fp32)
        quantize_static(str(source), str(out), reader, quant_format=QuantFormat.QDQ,
                        per_channel=settings["per_channel"], reduce_range=settings["reduce_range"],
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        calibrate_method=getattr(CalibrationMethod, settings["method"]),
                        calibration_cache_path=str(cache))


class _Batches:
    """The CalibrationDataReader onnxruntime asks for: model inputs, one batch at a time."""

    def __init__(self, batches):
        self.batches = iter(batches)

    def get_next(self):
        batch = next(self.batches, None)
        return None if batch is None else {"x": np.ascontiguousarray(batch.numpy(), np.float32)}


def measure_ranges(fp32: bytes, batches, settings: dict = SETTINGS) -> dict:
    """Each activation's range over `batches` (preprocessed inputs): the JSON that is stored."""
    with tempfile.TemporaryDirectory(prefix="captcha-int8-") as tmp:
        cache = Path(tmp) / "ranges.json"
        _quantize(fp32, Path(tmp) / "int8.onnx", cache, _Batches(batches), settings)
        return json.loads(cache.read_text())


def build(fp32: bytes, ranges: dict, settings: dict = SETTINGS) -> bytes:
    """The int8 graph from the fp32 graph and stored ranges, cached on disk by both."""
    key = hashlib.sha256(fp32 + json.dumps([ranges, settings], sort_keys=True).encode()).hexdigest()[:32]
    path = onnx_trunk.cache_dir() / f"trunk-int8-{key}.onnx"
    if path.is_file():
        return path.read_bytes()
    with tempfile.TemporaryDirectory(prefix="captcha-int8-") as tmp:
        cache, out = Path(tmp) / "ranges.json", Path(tmp) / "int8.onnx"
        cache.write_text(json.dumps(ranges))
        _quantize(fp32, out, cache, None, settings)
        data = out.read_bytes()
    try:  # a cache that cannot be written only costs the rebuild next time
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{os.getpid()}.part")
        part.write_bytes(data)
        os.replace(part, path)
    except OSError:
        pass
    return data


def quantize(recognizer, calibration_images, check_samples, min_check: int = MIN_CHECK_IMAGES,
             settings: dict = SETTINGS) -> dict:
    """Measure the ranges on `calibration_images`, check the int8 trunk on `check_samples` (labelled,
    none of them used for the ranges), and store both in every loaded form's weights file.
    Returns the record stored; its `check["passed"]` says whether the engine may use it."""
    from .calibration import ece
    from .recognizer import Recognizer
    from .weights import update_metadata
    if len(check_samples) < min_check:
        raise ValueError(f"the int8 check needs at least {min_check} labelled images besides the "
                         f"{len(calibration_images)} it is calibrated on; {len(check_samples)} are left")
    rec = recognizer
    images = [_open(p) for p in calibration_images]
    records = {}  # id(torch trunk) -> its record; forms trained together share one trunk, and one record
    for form, model in rec.models.items():
        key, spec = id(model.trunk), rec.infos[form].spec
        if key not in records:
            fp32 = onnx_trunk.load_or_export(model.trunk, (3, spec.height, spec.width))
            batches = (rec._inputs(images[i:i + 16])[spec] for i in range(0, len(images), 16))
            records[key] = {"ranges": measure_ranges(fp32, batches, settings), "settings": settings,
                            "calibration_images": len(images)}
        rec.infos[form].int8 = records[key]
    reference = Recognizer(rec.models, rec.infos, precision="fp32", engine="onnx")
    candidate = Recognizer(rec.models, rec.infos, precision="fp32", engine="onnx-int8")
    paths = [s.path for s in check_samples]
    labels = [s.label for s in check_samples]
    def agreement(preds):
        return float(np.mean([all(getattr(a, f).text == getattr(b, f).text for f in rec.models)
                              for a, b in zip(before, preds)]))
    before = reference.predict_batch(paths)
    candidate.reread_below = 0
    alone = candidate.predict_batch(paths)
    candidate.reread_below = REREAD_BELOW
    after = candidate.predict_batch(paths)
    agree = agreement(after)
    reread = float(np.mean([any(getattr(p, f).confidence < REREAD_BELOW for f in rec.models) for p in alone]))
    ece_fp32 = ece([p.answer.confidence for p in before], [p.answer.text == y for p, y in zip(before, labels)])
    ece_int8 = ece([p.answer.confidence for p in after], [p.answer.text == y for p, y in zip(after, labels)])
    accuracy = {name: float(np.mean([p.answer.text == y for p, y in zip(preds, labels)]))
                for name, preds in (("fp32", before), ("int8", after))}
    passed = bool(agree >= MIN_AGREEMENT and ece_int8 <= ece_fp32 + MAX_ECE_RISE)
    why = [] if passed else [f"readings agree with fp32 on {agree:.2%} of {len(paths)} images (needs {MIN_AGREEMENT:.1%})"
                             if agree < MIN_AGREEMENT else "",
                             f"the answer's ECE rose from {ece_fp32:.2%} to {ece_int8:.2%}"
                             if ece_int8 > ece_fp32 + MAX_ECE_RISE else ""]
    check = {"images": len(paths), "agreement": agree, "agreement_without_rereads": agreement(alone),
             "reread_below": REREAD_BELOW, "reread_share": reread, "ece_fp32": ece_fp32, "ece_int8": ece_int8,
             "accuracy": accuracy, "passed": passed, "why": "; ".join(w for w in why if w)}
    for info in rec.infos.values():
        info.int8 = {**info.int8, "check": check}
        update_metadata(info.path, int8=info.int8)
    return {"check": check, "calibration_images": len(images), "settings": settings}


def split(samples, calibrate: int = 300, check: int | None = None):
    """(calibration paths, check samples): a fixed mix by file-name hash, so reruns agree."""
    ordered = sorted(samples, key=lambda s: hashlib.sha256(s.path.name.encode()).hexdigest())
    rest = ordered[calibrate:]
    return [s.path for s in ordered[:calibrate]], rest if check is None else rest[:check]


def _open(path):
    from .images import open_image
    return open_image(path)


def refusal(record: dict | None) -> str | None:
    """Why a weights file's int8 record may not be used (None: it may)."""
    if not record or "ranges" not in record:
        return "these weights have no int8 trunk yet: make one with python -m captcha quantize --weights W --data DIR"
    check = record.get("check")
    if check is not None and not check.get("passed"):
        return f"their int8 trunk failed its check ({check.get('why')}), so it is not used"
    return None
