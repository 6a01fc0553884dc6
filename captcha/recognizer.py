"""The public face: load both forms once, read many images.

    rec = Recognizer.from_pretrained("weights")
    pred = rec.predict("data/2bX9k.png")
    pred.one_go.text, pred.sequential.text, pred.sequential.chars[0].confidence
"""
from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import onnx_trunk
from .errors import CaptchaError, WeightsError
from .hub import resolve
from .images import open_image
from .models import FORMS
from .spec import CaptchaSpec, normalize
from .weights import FILENAMES, WeightsInfo, check_spec, find_weights, load_weights

ENGINES = ("auto", "torch", "onnx")  # what runs the trunk; see Recognizer._pick_engine


@dataclass
class CharReading:
    char: str
    confidence: float


@dataclass
class Reading:
    """One form's reading of one image.

    `maps` ([length, h, w], sequential only) is where it looked, over the part of the image
    given by `box` (left, top, right, bottom fractions: the spec's crop).
    """

    text: str
    confidence: float
    chars: list[CharReading]
    maps: np.ndarray | None = field(default=None, repr=False)
    box: tuple = (0.0, 0.0, 1.0, 1.0)

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 6),
                "chars": [{"char": c.char, "confidence": round(c.confidence, 6)} for c in self.chars]}


@dataclass
class Prediction:
    """Both readings of one image (a form not loaded is None) and the time taken."""

    one_go: Reading | None
    sequential: Reading | None
    elapsed_ms: float

    def readings(self) -> dict[str, Reading]:
        return {form: r for form in FORMS if (r := getattr(self, form)) is not None}

    def to_dict(self) -> dict:
        out = {form: (r.to_dict() if (r := getattr(self, form)) is not None else None) for form in FORMS}
        out["elapsed_ms"] = round(self.elapsed_ms, 2)
        return out


def set_threads(n: int | None) -> int:
    """Set torch's CPU thread count (None/0: leave torch's default); returns the count in use.

    For front ends, which never import torch themselves.
    """
    if n:
        torch.set_num_threads(n)
    return torch.get_num_threads()


def bf16_is_fast() -> bool:
    """bf16 pays off on CPUs with native bf16 units (AVX512-BF16, AMX); elsewhere it is emulated."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


class Recognizer:
    """Holds the loaded models; thread-safe for concurrent `predict` calls (inference only)."""

    def __init__(self, models: dict[str, torch.nn.Module], infos: dict[str, WeightsInfo],
                 precision: str = "auto", engine: str = "auto"):
        if not models:
            raise WeightsError("a Recognizer needs at least one model")
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        self.models = {form: m.eval().to(memory_format=torch.channels_last) for form, m in models.items()}
        self.infos = infos
        self.bf16 = precision == "bf16" or (precision == "auto" and bf16_is_fast() and engine != "onnx")
        for model in self.models.values():
            for p in model.parameters():
                p.requires_grad_(False)
        self.shared_trunk = self._share_trunk()
        self.engine = self._pick_engine(engine)
        # id(torch trunk) -> what runs it; a shared trunk appears once
        self.trunks = {id(m.trunk): m.trunk for m in self.models.values()}
        if self.engine == "onnx":
            specs = {id(m.trunk): self.infos[f].spec for f, m in self.models.items()}
            try:
                runners = {key: onnx_trunk.OnnxTrunk(trunk, (3, specs[key].height, specs[key].width))
                           for key, trunk in self.trunks.items()}
            except Exception as e:  # a trunk the exporter cannot handle: PyTorch still reads it
                if engine == "onnx":
                    raise CaptchaError(f"cannot run this trunk in ONNX Runtime: {e}") from None
                warnings.warn(f"ONNX export failed ({e}); reading with PyTorch instead", RuntimeWarning)
                self.engine = "torch"
            else:
                self.trunks = runners

    @property
    def precision(self) -> str:
        return "bf16" if self.bf16 else "fp32"

    def _pick_engine(self, engine: str) -> str:
        """auto: ONNX Runtime for fp32 when it is installed (about 2x PyTorch eager on AVX2 CPUs),
        PyTorch for bf16 (CPUs with native bf16, where its oneDNN kernels are the fast path)."""
        if engine == "onnx":
            if self.bf16:
                raise ValueError("the onnx engine runs fp32; use precision fp32 or auto with it")
            if not onnx_trunk.available():
                raise CaptchaError("the onnx engine needs onnxruntime and onnxscript (pip install -r requirements.txt)")
            return "onnx"
        if engine == "auto" and not self.bf16 and onnx_trunk.available():
            return "onnx"
        return "torch"

    def _share_trunk(self) -> bool:
        """Forms trained together (train.py --form joint) hold the same trunk: run it once per image."""
        if len(self.models) < 2 or len({info.spec for info in self.infos.values()}) != 1:
            return False
        one_go, sequential = self.models["one_go"].trunk, self.models["sequential"].trunk
        a, b = one_go.state_dict(), sequential.state_dict()
        if a.keys() != b.keys() or not all(torch.equal(a[k], b[k]) for k in a):  # False on shape mismatch too
            return False
        if type(one_go) is not type(sequential) or str(one_go) != str(sequential):  # same strides too
            return False
        self.models["sequential"].trunk = one_go
        return True

    @classmethod
    def from_pretrained(cls, path="weights", forms=FORMS, spec: CaptchaSpec | None = None,
                        precision: str = "auto", engine: str = "auto") -> "Recognizer":
        """Load the forms found in a weights folder, one .safetensors file or a Hub repo id (`user/name`).

        A local path wins over a repo id spelled the same. `spec`, if given, refuses weights
        made for another alphabet or length.
        """
        path = resolve(path)
        if path.is_file():
            model, info = load_weights(path, expect_spec=spec)
            return cls({info.form: model}, {info.form: info}, precision, engine)
        if not path.is_dir():
            raise WeightsError(f"{path}: no such weights folder or file")
        files = {form: p for form, p in find_weights(path).items() if form in forms}
        if not files:
            raise WeightsError(f"{path}: holds no weights ({' or '.join(FILENAMES[f] for f in forms)}); "
                               f"train some with train.py or pass another folder")
        models, infos = {}, {}
        for form, file in files.items():
            models[form], infos[form] = load_weights(file, expect_form=form, expect_spec=spec)
        return cls(models, infos, precision, engine)

    @property
    def spec(self) -> CaptchaSpec:
        """The spec of the first loaded form (forms trained together share one)."""
        return next(iter(self.infos.values())).spec

    def describe(self) -> dict:
        return {form: {"arch": info.arch, "spec": json.loads(info.spec.to_json()), "summary": info.summary}
                for form, info in self.infos.items()}

    def check_alphabet(self, spec: CaptchaSpec) -> None:
        """Refuse to grade labels of another alphabet or length with these weights."""
        for info in self.infos.values():
            check_spec(info, spec)

    def predict(self, image) -> Prediction:
        """Read one image: a PIL image, bytes, a path or a numpy array."""
        return self.predict_batch([image])[0]

    @torch.inference_mode()
    def predict_batch(self, images, batch_size: int = 32) -> list[Prediction]:
        """Read many images; each Prediction's elapsed_ms is its share of the batch's time."""
        images = [open_image(im) for im in images]
        predictions = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            t0 = time.perf_counter()
            readings = self._read(chunk)
            elapsed = (time.perf_counter() - t0) * 1000 / len(chunk)
            for i in range(len(chunk)):
                predictions.append(Prediction(one_go=readings.get("one_go", [None] * len(chunk))[i],
                                              sequential=readings.get("sequential", [None] * len(chunk))[i],
                                              elapsed_ms=elapsed))
        return predictions

    def _read(self, images) -> dict[str, list[Reading]]:
        """Every loaded form's readings of `images`."""
        inputs = {}
        for info in self.infos.values():
            if info.spec not in inputs:
                inputs[info.spec] = normalize(torch.stack([info.spec.geometry(im) for im in images]))
        return {form: self._readings(self.infos[form].spec, logits, None if maps is None else maps.float().numpy())
                for form, (logits, maps) in self._logits(inputs).items()}

    @torch.inference_mode()
    def _logits(self, inputs: dict[CaptchaSpec, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """form -> (logits [batch, length, classes], the sequential form's attention maps or None) of
        batches of `spec.preprocess` inputs, one per spec; a shared trunk runs once."""
        features, out = {}, {}
        for form, model in self.models.items():
            spec = self.infos[form].spec
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                key = (id(model.trunk), spec)
                if key not in features:
                    batch = inputs[spec].contiguous(memory_format=torch.channels_last)
                    features[key] = self.trunks[id(model.trunk)](batch)
                if form == "sequential":
                    out[form] = model.read_with_maps(features[key])
                else:
                    out[form] = model.read(features[key]), None
        return out

    @staticmethod
    def _readings(spec: CaptchaSpec, logits: torch.Tensor, maps) -> list[Reading]:
        """Logits -> readings. With a length range a reading is the text before the first END, and
        its confidence also counts that END (the probability that the text stops there)."""
        probs = logits.float().softmax(-1)
        conf, idx = probs.max(-1)
        readings = []
        for b in range(len(logits)):
            used = spec.read_length(idx[b]) if spec.variable else len(idx[b])
            chars = [CharReading(spec.alphabet[int(i)], float(c))
                     for i, c in zip(idx[b][:used], conf[b][:used]) if int(i) != spec.end]
            readings.append(Reading(text="".join(c.char for c in chars),
                                    confidence=float(conf[b][:used].prod()),
                                    chars=chars,
                                    maps=None if maps is None else maps[b][:max(len(chars), 1)],
                                    box=spec.crop))
        return readings
