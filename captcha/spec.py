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


def normalize(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 RGB pixels [..., 3, H, W] -> float32 model input, on the pixels' device."""
    if pixels.dtype != torch.uint8:
        raise TypeError(f"normalize takes uint8 pixels (spec.geometry's output), got {pixels.dtype}")
    table, channel = _on(pixels.device)
    return table[channel, pixels.long()]


@functools.lru_cache(maxsize=8)
def _on(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return _TABLE.to(device), _CHANNEL.to(device)


@dataclass(frozen=True)
class CaptchaSpec:
    """Alphabet, length and model input size; stored inside every weights file."""

    alphabet: str = DEFAULT_ALPHABET
    length: int = DEFAULT_LENGTH
    height: int = DEFAULT_HEIGHT
    width: int = DEFAULT_WIDTH
    # The part of the image the model reads, as fractions (left, top, right, bottom). The
    # Large Captcha Dataset centres its text vertically, so its models can skip empty rows.
    crop: tuple = (0.0, 0.0, 1.0, 1.0)

    def __post_init__(self):
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
        if not isinstance(self.length, int) or self.length < 1:
            raise SpecError(f"the CAPTCHA length must be an integer >= 1, got {self.length!r}")
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
    def num_classes(self) -> int:
        return len(self.alphabet)

    def label_problem(self, label: str) -> str | None:
        """Why `label` is not a valid answer for this spec, or None if it is."""
        if len(label) != self.length:
            return f"has {len(label)} characters, expected {self.length}"
        bad = sorted({ch for ch in label if ch not in self.alphabet})
        if bad:
            return f"has characters outside the alphabet: {''.join(bad)!r}"
        return None

    def encode(self, label: str) -> list[int]:
        problem = self.label_problem(label)
        if problem:
            raise LabelError(f"label {label!r} {problem}")
        return [self.alphabet.index(ch) for ch in label]

    def decode(self, indices) -> str:
        return "".join(self.alphabet[int(i)] for i in indices)

    # --- serialisation ----------------------------------------------------------------
    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "CaptchaSpec":
        try:
            data = json.loads(text)
            return cls(alphabet=data["alphabet"], length=int(data["length"]),
                       height=int(data["height"]), width=int(data["width"]),
                       crop=tuple(data.get("crop", (0.0, 0.0, 1.0, 1.0))))
        except (ValueError, KeyError, TypeError) as e:
            raise SpecError(f"not a valid CAPTCHA spec: {e}") from None

    def describe(self) -> str:
        crop = "" if self.crop == (0.0, 0.0, 1.0, 1.0) else f" (reading box {self.crop})"
        return f"{self.length} characters of {self.alphabet!r}, input {self.height}x{self.width} (HxW){crop}"

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
