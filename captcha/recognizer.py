"""The public face: load both forms once, read many images.

    rec = Recognizer.from_pretrained("weights")
    pred = rec.predict("data/2bX9k.png")
    pred.answer.text, pred.answer.sure          # the string to submit, and whether to trust it
    pred.one_go.text, pred.sequential.text, pred.sequential.chars[0].confidence

Confidences are calibrated by the temperature each weights file carries (captcha/calibration.py):
a full-string confidence of 0.9 means such readings are right about 90% of the time.
"""
from __future__ import annotations

import dataclasses
import json
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch

from . import int8, onnx_trunk
from .errors import CaptchaError, WeightsError
from .hub import resolve
from .images import open_image
from .models import FORMS, feature_shape
from .spec import CaptchaSpec, normalize
from .weights import FILENAMES, WeightsInfo, check_spec, find_weights, load_weights

ENGINES = ("auto", "torch", "onnx", "onnx-int8")  # what runs the trunk; see Recognizer._pick_engine

# A second look at doubtful images (`second_look=True`): an answer below SECOND_LOOK_BELOW is read
# again through three slightly moved reading boxes (edges as fractions of the box: left, top, right,
# bottom), and each form's calibrated probabilities are averaged over the four views. Measured on
# the shipped weights (int8 engine), 2000 held-out images of each look: the answer reads 97.45%
# instead of 96.55% (0.3 look) and 98.75% instead of 98.10% (0.7.1), its ECE 0.82% instead of 1.72%
# and 0.42% instead of 0.63%; batches read about 40% fewer images a second. Off by default.
SECOND_LOOK_BELOW = 0.99
VIEWS = ((0.0, -1 / 30, 0.0, -1 / 30),  # a thirtieth of the box higher
         (0.02, 0.0, 0.0, 0.0),         # 2% off the left
         (0.0, 0.0, -0.02, 0.0))        # 2% off the right


def moved(crop: tuple, view: tuple) -> tuple:
    """A reading box moved by `view` (fractions of its own size), kept inside the image: a box that
    would leave it is cut at the edge instead."""
    left, top, right, bottom = crop
    w, h = right - left, bottom - top
    box = [left + view[0] * w, top + view[1] * h, right + view[2] * w, bottom + view[3] * h]
    return (max(0.0, box[0]), max(0.0, box[1]), min(1.0, box[2]), min(1.0, box[3]))


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
    sure: bool | None = None  # confidence at or above the threshold; None: no threshold known

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 6), "sure": self.sure,
                "chars": [{"char": c.char, "confidence": round(c.confidence, 6)} for c in self.chars]}


def _numpy(t) -> np.ndarray | None:
    """A tensor (any float dtype) or array as a float32 array; None stays None."""
    if t is None or isinstance(t, np.ndarray):
        return t
    return t.float().numpy()


def _softmax(z: np.ndarray) -> np.ndarray:
    """Along the last axis, in numpy (see spec.normalize for why not torch)."""
    z = np.exp(z - z.max(-1, keepdims=True))
    return z / z.sum(-1, keepdims=True)


def percent(p: float) -> str:
    """72.8%, and two significant digits below 0.1% (0.0043%), where one decimal would say 0.0%."""
    return f"{p:.1%}" if p >= 0.001 or p == 0 else f"{p * 100:.2g}%"


@dataclass
class Answer:
    """The one string to submit: the more confident form's reading, with its calibrated confidence.

    (Of the combinations measured, the more confident form kept the most answers at 99.5%
    accuracy; a product or mixture of the two forms' probabilities, or ranking agreeing forms
    first, kept no more: both forms share one trunk, so they mostly err together.)
    `sure` is confidence >= threshold; `doubtful` lists the characters behind an unsure answer:
    the ones below the per-character share of the threshold, and where the other form reads
    something else.
    """

    text: str
    confidence: float
    sure: bool | None
    form: str
    threshold: float | None = None
    doubtful: list[dict] = field(default_factory=list)  # {"position", "char", "confidence"}
    forms_agree: bool | None = None  # None with one form loaded

    def reason(self) -> str:
        """Why the answer is (not) sure, in one sentence for a person."""
        if self.threshold is None:
            return "these weights carry no calibration, so there is no threshold to be sure by"
        if self.sure:
            return f"{percent(self.confidence)} sure, at or above the {percent(self.threshold)} threshold"
        why = [f"{percent(self.confidence)} sure, below the {percent(self.threshold)} threshold"]
        if self.doubtful:
            why.append("doubtful: " + ", ".join(f"{d['char']!r} at position {d['position'] + 1} "
                                                  f"({percent(d['confidence'])})" for d in self.doubtful))
        if self.forms_agree is False:
            why.append("the two models read different texts")
        if not self.text:
            why.append("nothing was read")
        return "; ".join(why)

    def to_dict(self) -> dict:
        return {"text": self.text, "confidence": round(self.confidence, 6), "sure": self.sure, "form": self.form,
                "threshold": None if self.threshold is None else round(self.threshold, 6),
                "forms_agree": self.forms_agree,
                "doubtful": [{**d, "confidence": round(d["confidence"], 6)} for d in self.doubtful],
                "reason": self.reason()}


@dataclass
class Prediction:
    """The answer to submit, both readings of one image (a form not loaded is None) and the time taken."""

    one_go: Reading | None
    sequential: Reading | None
    elapsed_ms: float
    answer: Answer | None = None

    def readings(self) -> dict[str, Reading]:
        return {form: r for form in FORMS if (r := getattr(self, form)) is not None}

    def to_dict(self) -> dict:
        out = {"answer": self.answer.to_dict() if self.answer else None}
        out.update({form: (r.to_dict() if (r := getattr(self, form)) is not None else None) for form in FORMS})
        out["elapsed_ms"] = round(self.elapsed_ms, 2)
        return out


def answer_of(readings: dict[str, Reading], threshold: float | None) -> Answer:
    """The more confident reading as the answer (the first form on a tie), and what makes it doubtful."""
    form, best = max(readings.items(), key=lambda item: item[1].confidence)
    others = [r.text for f, r in readings.items() if f != form]
    sure = None if threshold is None else best.confidence >= threshold
    doubtful = []
    if sure is False and best.chars:
        bar = threshold ** (1 / len(best.chars))  # each character's share of the threshold
        for i, c in enumerate(best.chars):
            if c.confidence < bar or any(i >= len(t) or t[i] != c.char for t in others):
                doubtful.append({"position": i, "char": c.char, "confidence": c.confidence})
        if not doubtful:
            i = min(range(len(best.chars)), key=lambda k: best.chars[k].confidence)
            doubtful.append({"position": i, "char": best.chars[i].char, "confidence": best.chars[i].confidence})
    return Answer(best.text, best.confidence, sure, form, threshold, doubtful,
                  forms_agree=all(t == best.text for t in others) if others else None)


def check_min_confidence(value: float | None) -> float | None:
    if value is not None and not 0 <= value <= 1:
        raise CaptchaError(f"a minimum confidence is a probability from 0 to 1, not {value}")
    return value


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
                 precision: str = "auto", engine: str = "auto", min_confidence: float | None = None,
                 second_look: bool = False):
        if not models:
            raise WeightsError("a Recognizer needs at least one model")
        if precision not in ("auto", "fp32", "bf16"):
            raise ValueError("precision must be auto, fp32 or bf16")
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}")
        self.min_confidence = check_min_confidence(min_confidence)
        self.models = {form: m.eval().to(memory_format=torch.channels_last) for form, m in models.items()}
        self.infos = infos
        self.bf16 = precision == "bf16" or (precision == "auto" and bf16_is_fast() and engine in ("auto", "torch"))
        for model in self.models.values():
            for p in model.parameters():
                p.requires_grad_(False)
        self.shared_trunk = self._share_trunk()
        # id(torch trunk) -> the torch trunk; self.trunks: id -> what runs it (a shared trunk appears
        # once): the torch trunk, or with the ONNX engines an OnnxReader, its forms' heads included
        self.torch_trunks = {id(m.trunk): m.trunk for m in self.models.values()}
        self.trunks = dict(self.torch_trunks)
        self.engine_ms: dict[str, float] = {}  # auto with an int8 trunk: each candidate's time on one image
        # The int8 engine re-reads, with the fp32 trunk, every image that a form reads below this
        # confidence: int8 and fp32 disagree only on such doubtful readings (captcha/int8.py).
        self.reread_below = int8.REREAD_BELOW
        self.second_look_below = SECOND_LOOK_BELOW if second_look else 0.0  # 0: no second look
        self.engine = self._pick_engine(engine)
        if self.engine in ("onnx", "onnx-int8"):
            try:
                self.trunks = self._onnx_readers(int8_graph=self.engine == "onnx-int8")
            except Exception as e:  # a trunk the exporter cannot handle: PyTorch still reads it
                if engine != "auto":
                    raise CaptchaError(f"cannot run this trunk in ONNX Runtime: {e}") from None
                warnings.warn(f"ONNX export failed ({e}); reading with PyTorch instead", RuntimeWarning)
                self.engine = "torch"
        if engine == "auto" and precision == "auto" and self._int8_usable():
            self._race()

    @property
    def precision(self) -> str:
        return "int8" if self.engine == "onnx-int8" else "bf16" if self.bf16 else "fp32"

    def _pick_engine(self, engine: str) -> str:
        """auto: ONNX Runtime for fp32 when it is installed (about 2x PyTorch eager on AVX2 CPUs),
        PyTorch for bf16 (CPUs with native bf16, where its oneDNN kernels are the fast path); then,
        if the weights carry an int8 trunk that passed its check, whichever of the two is faster
        here (`_race`). onnx-int8: that int8 trunk, or a message saying why not."""
        if engine in ("onnx", "onnx-int8"):
            if self.bf16:
                raise ValueError(f"the {engine} engine does not run bf16; use precision auto or fp32 with it")
            if not onnx_trunk.available():
                raise CaptchaError(f"the {engine} engine needs onnxruntime and onnxscript (pip install -r requirements.txt)")
            if engine == "onnx-int8":
                for info in self.infos.values():
                    if (why := int8.refusal(info.int8)) is not None:
                        raise CaptchaError(f"{info.path}: {why}; use --engine onnx or auto")
            return engine
        if engine == "auto" and not self.bf16 and onnx_trunk.available():
            return "onnx"
        return "torch"

    def _int8_usable(self) -> bool:
        return onnx_trunk.available() and all(info.int8.get("check", {}).get("passed") for info in self.infos.values())

    def _onnx_readers(self, int8_graph: bool, fp32: dict | None = None) -> dict:
        """id(trunk) -> an OnnxReader of that trunk and its forms' heads: fp32, and int8 beside it.
        `fp32`: the onnx engine's readers, to add the int8 graph to instead of building them again."""
        readers = {}
        for key, trunk in self.torch_trunks.items():
            models = {f: m for f, m in self.models.items() if id(m.trunk) == key}
            form = next(iter(models))
            spec, record = self.infos[form].spec, self.infos[form].int8
            graph = onnx_trunk.load_or_export(trunk, (3, spec.height, spec.width))
            reader = (fp32 or {}).get(key) or onnx_trunk.OnnxReader({"fp32": graph}, models, feature_shape(trunk, spec))
            if int8_graph:
                reader = reader.with_trunk("int8", int8.build(graph, record["ranges"], record["settings"]))
            readers[key] = reader
        return readers

    @torch.inference_mode()
    def _race(self, runs: int = 5) -> None:
        """Time the chosen engine against the int8 trunk on one image (median of `runs` after a
        warm-up) and keep the faster: int8 wins by far on VNNI/AMX CPUs, by less on AVX2 ones."""
        x = {spec: torch.zeros(1, 3, spec.height, spec.width) for spec in {i.spec for i in self.infos.values()}}
        contenders = [(self.engine, self.bf16, self.trunks)]
        try:
            fp32 = self.trunks if self.engine == "onnx" else None
            contenders.append(("onnx-int8", False, self._onnx_readers(int8_graph=True, fp32=fp32)))
        except Exception as e:
            warnings.warn(f"the int8 trunk could not be built ({e}); reading without it", RuntimeWarning)
            return
        for name, bf16, trunks in contenders:
            self.engine, self.bf16, self.trunks = name, bf16, trunks
            self._logits(x)
            times = []
            for _ in range(runs):
                t0 = time.perf_counter()
                self._logits(x)
                times.append((time.perf_counter() - t0) * 1000)
            self.engine_ms[name] = float(np.median(times))
        best = min(self.engine_ms, key=self.engine_ms.get)
        self.engine, self.bf16, self.trunks = next(c for c in contenders if c[0] == best)

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
                        precision: str = "auto", engine: str = "auto",
                        min_confidence: float | None = None, second_look: bool = False) -> "Recognizer":
        """Load the forms found in a weights folder, one .safetensors file or a Hub repo id (`user/name`).

        A local path wins over a repo id spelled the same. `spec`, if given, refuses weights
        made for another alphabet or length. `min_confidence` replaces the thresholds the weights
        carry for `sure`. `second_look`: read doubtful images again through moved boxes (VIEWS).
        """
        path = resolve(path)
        if path.is_file():
            model, info = load_weights(path, expect_spec=spec)
            return cls({info.form: model}, {info.form: info}, precision, engine, min_confidence, second_look)
        if not path.is_dir():
            raise WeightsError(f"{path}: no such weights folder or file")
        files = {form: p for form, p in find_weights(path).items() if form in forms}
        if not files:
            raise WeightsError(f"{path}: holds no weights ({' or '.join(FILENAMES[f] for f in forms)}); "
                               f"train some with train.py or pass another folder")
        models, infos = {}, {}
        for form, file in files.items():
            models[form], infos[form] = load_weights(file, expect_form=form, expect_spec=spec)
        return cls(models, infos, precision, engine, min_confidence, second_look)

    @property
    def spec(self) -> CaptchaSpec:
        """The spec of the first loaded form (forms trained together share one)."""
        return next(iter(self.infos.values())).spec

    def describe(self) -> dict:
        return {form: {"arch": info.arch, "spec": json.loads(info.spec.to_json()), "summary": info.summary,
                       "calibration": info.calibration, "int8": info.int8.get("check")}
                for form, info in self.infos.items()}

    @property
    def calibrated(self) -> bool:
        return all(info.calibration for info in self.infos.values())

    def threshold(self, form: str | None = None, min_confidence: float | None = None) -> float | None:
        """The confidence `sure` needs: min_confidence (per call, else the Recognizer's), else the one
        stored for `form` (None: the answer's, fitted on both forms together), else None."""
        for value in (min_confidence, self.min_confidence):
            if value is not None:
                return check_min_confidence(value)
        if form is not None:
            return self.infos[form].calibration.get("threshold")
        if len(self.infos) == 1:
            return next(iter(self.infos.values())).calibration.get("threshold")
        stored = [info.calibration.get("answer_threshold") for info in self.infos.values()]
        return max(stored) if None not in stored else None

    def check_alphabet(self, spec: CaptchaSpec) -> None:
        """Refuse to grade labels of another alphabet or length with these weights."""
        for info in self.infos.values():
            check_spec(info, spec)

    def predict(self, image, min_confidence: float | None = None) -> Prediction:
        """Read one image: a PIL image, bytes, a path or a numpy array."""
        return self.predict_batch([image], min_confidence=min_confidence)[0]

    @torch.inference_mode()
    def predict_batch(self, images, batch_size: int = 32, min_confidence: float | None = None) -> list[Prediction]:
        """Read many images; each Prediction's elapsed_ms is its share of the batch's time.
        `min_confidence` overrides the thresholds for `sure` in this call."""
        thresholds = {form: self.threshold(form, min_confidence) for form in self.models}
        answer_threshold = self.threshold(None, min_confidence)
        images = [open_image(im) for im in images]
        predictions = []
        for start in range(0, len(images), batch_size):
            chunk = images[start:start + batch_size]
            t0 = time.perf_counter()
            readings = self._read(chunk)
            elapsed = (time.perf_counter() - t0) * 1000 / len(chunk)
            for i in range(len(chunk)):
                mine = {form: rs[i] for form, rs in readings.items()}
                for form, reading in mine.items():
                    if thresholds[form] is not None:
                        reading.sure = reading.confidence >= thresholds[form]
                predictions.append(Prediction(one_go=mine.get("one_go"), sequential=mine.get("sequential"),
                                              elapsed_ms=elapsed, answer=answer_of(mine, answer_threshold)))
        return predictions

    @torch.inference_mode()
    def logits(self, images=(), batches=()) -> dict[str, np.ndarray]:
        """form -> uncalibrated logits [n, length, classes] (what calibration is fitted on) of
        `images`, or of `batches` already through `spec.geometry` (a validation loader's)."""
        images = [open_image(im) for im in images]
        chunks = [self._inputs(images[i:i + 32]) for i in range(0, len(images), 32)]
        out = {form: [] for form in self.models}
        for chunk in chunks or ({spec: normalize(b) for spec in {i.spec for i in self.infos.values()}}
                                for b in batches):
            for form, (logits, _) in self._logits(chunk).items():
                out[form].append(logits.float().numpy())
        return {form: np.concatenate(parts) for form, parts in out.items()}

    def _inputs(self, images, view: tuple | None = None) -> dict[CaptchaSpec, torch.Tensor]:
        """spec -> the batch of model inputs for that spec; `view`: through a moved reading box (VIEWS)."""
        inputs = {}
        for info in self.infos.values():
            if info.spec not in inputs:
                spec = info.spec if view is None else dataclasses.replace(info.spec, crop=moved(info.spec.crop, view))
                # numpy, not torch ops: see spec.normalize
                pixels = np.stack([spec.geometry(im).numpy() for im in images])
                inputs[info.spec] = torch.from_numpy(normalize(pixels))
        return inputs

    def _read(self, images) -> dict[str, list[Reading]]:
        """Every loaded form's readings of `images`, each form's logits divided by its temperature.
        With the int8 trunk, images that any form reads below `reread_below` are read again in fp32;
        then images whose answer is below `second_look_below` get a second look (VIEWS)."""
        inputs = self._inputs(images)
        logits = {form: (_numpy(lg), _numpy(maps)) for form, (lg, maps) in self._logits(inputs).items()}
        readings = self._calibrated_readings(logits)
        paths = [None] * len(images)  # the trunk graph each image was read with (None: the engine's)
        if doubtful := self._doubtful(readings):
            again = self._logits({spec: torch.from_numpy(x.numpy()[doubtful]) for spec, x in inputs.items()}, "fp32")
            for form, (lg, maps) in again.items():
                logits[form][0][doubtful] = _numpy(lg)
                if maps is not None:
                    logits[form][1][doubtful] = _numpy(maps)
            for form, rs in self._calibrated_readings(again).items():
                for j, i in enumerate(doubtful):
                    readings[form][i] = rs[j]
                    paths[i] = "fp32"
        if self.second_look_below > 0:
            second = [i for i in range(len(images))
                      if max(rs[i].confidence for rs in readings.values()) < self.second_look_below]
            for path in {paths[i] for i in second}:
                group = [i for i in second if paths[i] == path]
                for form, rs in self._second_look([images[i] for i in group], logits, group, path).items():
                    for j, i in enumerate(group):
                        readings[form][i] = rs[j]
        return readings

    def _probs(self, form: str, logits) -> np.ndarray:
        """Calibrated probabilities [n, length, classes] of one form's logits."""
        return _softmax(np.asarray(logits, np.float32) / np.float32(self.infos[form].temperature))

    def _second_look(self, images, logits: dict, rows: list[int], path: str | None) -> dict[str, list[Reading]]:
        """Readings of `images` (rows `rows` of the first reading's `logits`) from each form's calibrated
        probabilities averaged over the first reading and the VIEWS, read along the same `path`."""
        probs = {form: [self._probs(form, lg[rows])] for form, (lg, _) in logits.items()}
        for view in VIEWS:
            for form, (lg, _) in self._logits(self._inputs(images, view), path).items():
                probs[form].append(self._probs(form, _numpy(lg)))
        out = {}
        for form, ps in probs.items():
            maps = logits[form][1]
            mean = np.mean(ps, 0)
            out[form] = self._readings(self.infos[form].spec, np.log(np.maximum(mean, 1e-30)),
                                       None if maps is None else maps[rows])
        return out

    def _doubtful(self, readings: dict[str, list[Reading]]) -> list[int]:
        """Which images the int8 engine reads again in fp32: those a form reads below reread_below."""
        if self.engine != "onnx-int8" or self.reread_below <= 0:
            return []
        count = len(next(iter(readings.values())))
        return [i for i in range(count) if any(rs[i].confidence < self.reread_below for rs in readings.values())]

    def _calibrated_readings(self, logits: dict) -> dict[str, list[Reading]]:
        return {form: self._readings(self.infos[form].spec, _numpy(lg) / np.float32(self.infos[form].temperature),
                                     _numpy(maps))
                for form, (lg, maps) in logits.items()}

    def _logits(self, inputs: dict[CaptchaSpec, torch.Tensor],
                path: str | None = None) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """form -> (logits [batch, length, classes], the sequential form's attention maps or None) of
        batches of `spec.preprocess` inputs, one per spec; a shared trunk runs once. `path`: which
        trunk graph of the ONNX engines ("fp32" or "int8"; default: the engine's)."""
        if self.engine == "torch":
            return self._heads(self._features(inputs))
        path = path or ("int8" if self.engine == "onnx-int8" else "fp32")
        out = {}
        for form, model in self.models.items():
            if form not in out:
                out.update(self.trunks[id(model.trunk)](inputs[self.infos[form].spec], path))
        return out

    @torch.inference_mode()
    def _features(self, inputs: dict[CaptchaSpec, torch.Tensor]) -> dict:
        """(id(trunk), spec) -> that PyTorch trunk's features of the inputs for that spec; each runs once."""
        features = {}
        for form, model in self.models.items():
            key = (id(model.trunk), self.infos[form].spec)
            if key not in features:
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                    features[key] = self.trunks[id(model.trunk)](
                        inputs[key[1]].contiguous(memory_format=torch.channels_last))
        return features

    @torch.inference_mode()
    def _heads(self, features: dict) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
        """form -> (logits, attention maps or None) from `_features`, in PyTorch."""
        out = {}
        for form, model in self.models.items():
            f = features[id(model.trunk), self.infos[form].spec]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                out[form] = model.read_with_maps(f) if form == "sequential" else (model.read(f), None)
        return out

    @staticmethod
    def _readings(spec: CaptchaSpec, logits: np.ndarray, maps) -> list[Reading]:
        """Logits -> readings (in numpy: see spec.normalize). With a length range a reading is the text
        before the first END, and its confidence also counts that END (the probability that the text
        stops there)."""
        probs = _softmax(logits)
        idx = probs.argmax(-1)
        conf = np.take_along_axis(probs, idx[..., None], -1)[..., 0]
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
