"""What a CAPTCHA is, and the one road from an image to model input.

`CaptchaSpec.preprocess` = `normalize(spec.geometry(image))`: the geometry (crop, resize) gives
uint8 pixels, and `normalize` is the one tensor normalisation. Inference calls `preprocess`;
training keeps batches in uint8 (smaller to move, and normalised on the training device) and
calls the same two steps. A preprocessing step written twice is how accuracy silently drops
between training and serving.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from .errors import LabelError, SpecError

DEFAULT_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
DEFAULT_LENGTH = 5
# 128x128 keeps the case cues of the Large Captcha Dataset legible (its 42/50/56 px glyphs
# become 21/25/28 px, so c/C, o/O, x/X still differ by several pixels) while two ResNet-50s
# read one image in well under 60 ms on 2 CPU cores. See README "Choosing the input size".
DEFAULT_HEIGHT = 128
DEFAULT_WIDTH = 128

# ImageNet statistics, so `--init imagenet` trunks see the inputs they were trained on.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# Every uint8 value of each channel, normalised once in float32 ((v / 255 - mean) / std): a lookup
# gives the same bits on every device and batch size, where arithmetic could round differently.
_TABLE = torch.from_numpy(((np.arange(256, dtype=np.float32)[None, :] / 255.0
                            - np.asarray(MEAN, dtype=np.float32)[:, None])
                           / np.asarray(STD, dtype=np.float32)[:, None]).astype(np.float32))
_CHANNEL = torch.arange(3).view(3, 1, 1)
_TABLE_NP = _TABLE.numpy()


def normalize(pixels: torch.Tensor | np.ndarray) -> torch.Tensor | np.ndarray:
    """uint8 RGB pixels [..., 3, H, W] -> float32 model input, on the pixels' device; a numpy array
    in, a numpy array out (the same bits). Readers that run ONNX Runtime take the numpy road: any
    PyTorch op big enough to wake its worker threads leaves them spinning on the cores ONNX Runtime
    is about to use (measured: +1.1 ms on the next int8 trunk run, 2 cores)."""
    if pixels.dtype not in (torch.uint8, np.uint8):
        raise TypeError(f"normalize takes uint8 pixels (spec.geometry's output), got {pixels.dtype}")
    if isinstance(pixels, np.ndarray):
        out = np.empty(pixels.shape, np.float32)
        for c in range(3):
            np.take(_TABLE_NP[c], pixels[..., c, :, :], out=out[..., c, :, :])
        return out
    table, channel = _on(pixels.device)
    return table[channel, pixels.long()]


@functools.lru_cache(maxsize=8)
def _on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return _TABLE.to(device), _CHANNEL.to(device)


def parse_length(value) -> tuple[int, int]:
    """5, "5" or "4-8" -> (shortest, longest): the one spelling of a length range, in the CLI,
    the spec JSON, the weights metadata and the API."""
    if isinstance(value, bool):
        raise SpecError(f"the CAPTCHA length must be N or MIN-MAX (e.g. 5 or 4-8), got {value!r}")
    if isinstance(value, int):
        return value, value
    match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", str(value))
    if not match:
        raise SpecError(f"the CAPTCHA length must be N or MIN-MAX (e.g. 5 or 4-8), got {value!r}")
    low = int(match[1])
    high = int(match[2]) if match[2] else low
    if low > high:
        raise SpecError(f"the length range {value!r} ends before it starts; write MIN-MAX, e.g. 4-8")
    return low, high


def format_length(low: int, high: int) -> int | str:
    """(5, 5) -> 5, (4, 8) -> "4-8": parse_length's inverse."""
    return low if low == high else f"{low}-{high}"


@dataclass(frozen=True)
class CaptchaSpec:
    """Alphabet, length and model input size; stored inside every weights file.

    `length` is the most characters a CAPTCHA has, which is the number of positions both forms
    read. Give it as "4-8" (or set `min_length`) for CAPTCHAs of varying length: the models then
    read one more class, END, at the positions after the last character, and a reading is the
    text before its first END. A fixed length has no END class (the shipped weights' layout).
    """

    alphabet: str = DEFAULT_ALPHABET
    length: int = DEFAULT_LENGTH
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    # The part of the image the model reads, as fractions (left, top, right, bottom). The
    # Large Captcha Dataset centres its text vertically, so its models can skip empty rows.
    crop: tuple = (0.0, 0.0, 1.0, 1.0)
    min_length: int | None = None  # None: every CAPTCHA has `length` characters

    def __post_init__(self):
        low, high = parse_length(self.length)
        if isinstance(self.length, str) and self.min_length is None:
            object.__setattr__(self, "min_length", low)
        elif self.min_length is None:
            object.__setattr__(self, "min_length", high)
        object.__setattr__(self, "length", high)
        if not isinstance(self.alphabet, str) or not self.alphabet:
            raise SpecError("the alphabet must be a non-empty string of characters")
        seen, dupes = set(), []
        for ch in self.alphabet:
            if ch in seen and ch not in dupes:
                dupes.append(ch)
            seen.add(ch)
        if dupes:
            raise SpecError(f"the alphabet has duplicate characters: {''.join(dupes)!r}; list each character once")
        if any(ch.isspace() for ch in self.alphabet):
            raise SpecError("the alphabet may not contain whitespace")
        if not isinstance(self.min_length, int) or not 1 <= self.min_length <= self.length:
            raise SpecError(f"the CAPTCHA length must be N or MIN-MAX with 1 <= MIN <= MAX, "
                            f"got {format_length(self.min_length, self.length)!r}")
        crop = tuple(float(v) for v in self.crop) if len(self.crop) == 4 else None
        if crop is None or not (0 <= crop[0] < crop[2] <= 1 and 0 <= crop[1] < crop[3] <= 1):
            raise SpecError(f"crop must be fractions (left, top, right, bottom) with left < right and "
                            f"top < bottom, all in [0, 1]; got {self.crop!r}")
        object.__setattr__(self, "crop", crop)
        for name in ("height", "width"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 16 <= value <= 1024:
                raise SpecError(f"the input {name} must be an integer between 16 and 1024, got {value!r}")

    # --- labels -----------------------------------------------------------------------
    @property
    def variable(self) -> bool:
        """True when CAPTCHAs vary in length, so the models also read END."""
        return self.min_length != self.length

    @property
    def lengths(self) -> int | str:
        """The length as written everywhere: 5 or "4-8"."""
        return format_length(self.min_length, self.length)

    @property
    def num_classes(self) -> int:
        """Classes per position: the alphabet, and END when the length varies."""
        return len(self.alphabet) + self.variable

    @property
    def end(self) -> int | None:
        """The END class index (after the alphabet), or None for a fixed length."""
        return len(self.alphabet) if self.variable else None

    def label_problem(self, label: str) -> str | None:
        """Why `label` is not a valid answer for this spec, or None if it is."""
        if not label:
            return "is empty"
        if not self.min_length <= len(label) <= self.length:
            expected = self.length if not self.variable else f"{self.min_length} to {self.length}"
            return f"has {len(label)} characters, expected {expected}"
        bad = sorted({ch for ch in label if ch not in self.alphabet})
        if bad:
            return f"has characters outside the alphabet: {''.join(bad)!r}"
        return None

    def encode(self, label: str) -> list[int]:
        problem = self.label_problem(label)
        if problem:
            raise LabelError(f"label {label!r} {problem}")
        return [self.alphabet.index(ch) for ch in label] + [self.end] * (self.length - len(label))

    def decode(self, indices) -> str:
        """Class indices, one per position -> the text before the first END."""
        text = []
        for i in indices:
            if int(i) == self.end:
                break
            text.append(self.alphabet[int(i)])
        return "".join(text)

    def read_length(self, indices) -> int:
        """How many positions a reading's text and its first END take (all of them without END)."""
        indices = [int(i) for i in indices]
        return indices.index(self.end) + 1 if self.end in indices else len(indices)

    # --- serialisation ----------------------------------------------------------------
    def to_json(self) -> str:
        data = asdict(self)
        data["length"] = self.lengths
        del data["min_length"]
        return json.dumps(data, ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CaptchaSpec":
        try:
            data = json.loads(text)
            return cls(alphabet=data["alphabet"], length=str(data["length"]),
                       height=int(data["height"]), width=int(data["width"]),
                       crop=tuple(data.get("crop", (0.0, 0.0, 1.0, 1.0))))
        except (ValueError, KeyError, TypeError) as e:
            raise SpecError(f"not a valid CAPTCHA spec: {e}") from None

    def describe(self) -> str:
        crop = "" if self.crop == (0.0, 0.0, 1.0, 1.0) else f" (reading box {self.crop})"
        return f"{self.lengths} characters of {self.alphabet!r}, input {self.height}x{self.width} (HxW){crop}"

    # --- model input --------------------------------------------------------------------
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """A PIL image -> float tensor [3, height, width]: cropped to `crop`, resized, normalised."""
        return normalize(self.geometry(image))

    def geometry(self, image: Image.Image) -> torch.Tensor:
        """A PIL image -> uint8 RGB tensor [3, height, width]: cropped to `crop`, resized."""
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.crop != (0.0, 0.0, 1.0, 1.0):
            w, h = image.size
            left, top, right, bottom = (round(f * n) for f, n in zip(self.crop, (w, h, w, h)))
            image = image.crop((left, top, max(right, left + 1), max(bottom, top + 1)))
        if image.size != (self.width, self.height):
            image = image.resize((self.width, self.height), Image.Resampling.BILINEAR, reducing_gap=None)
        return torch.from_numpy(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).copy())
