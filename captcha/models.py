"""The two model forms, built on any timm CNN trunk. No file I/O, no PIL: tensors in, logits out.

- `OneGo`: the whole image in one pass; a head that keeps the trunk's spatial layout (the
  feature map is flattened, not averaged away) emits `length x alphabet` logits at once.
- `Sequential`: its own trunk; the feature map is divided into one soft region per character
  position (a learned attention map, started as vertical strips), and `length` separate
  classifiers each read their own region. The maps say where each position looked. For a
  length range, train.py uses `attention="lengths"` (one set of strips per possible length,
  weighed by a length classifier); `"chain"` is kept for weights trained with it
  (benchmarks/own_captchas.md compares the three).
- `Joint`: the two heads on one shared trunk, for training both forms in one pass (half the
  compute on a CPU); it splits into an ordinary `OneGo` and `Sequential` for saving.

OneGo and Sequential return logits shaped [batch, length, alphabet]; Joint returns both forms'
logits side by side, [batch, 2 * length, alphabet].
"""
from __future__ import annotations

import timm
import torch
import torch.nn.functional as F
from torch import nn

from .spec import CaptchaSpec

FORMS = ("one_go", "sequential")


def form_name(name: str) -> str:
    """'one-go', 'one_go', 'onego' -> 'one_go'; the CLI spells forms with a hyphen."""
    key = name.strip().lower().replace("-", "_")
    key = {"onego": "one_go", "whole": "one_go"}.get(key, key)
    if key not in FORMS:
        raise ValueError(f"unknown form {name!r}; choose one-go or sequential")
    return key


def create_trunk(arch: str, pretrained: bool = False, output_stride: int | None = None) -> nn.Module:
    """A timm CNN with its classifier and pooling removed: image -> [B, C, h, w]."""
    kwargs = dict(pretrained=pretrained, num_classes=0, global_pool="")
    if output_stride:
        kwargs["output_stride"] = output_stride
    try:
        return timm.create_model(arch, **kwargs)
    except TypeError:  # trunks without dilation support keep their natural stride
        kwargs.pop("output_stride", None)
        return timm.create_model(arch, **kwargs)


@torch.no_grad()
def feature_shape(trunk: nn.Module, spec: CaptchaSpec) -> tuple[int, int, int]:
    """(channels, h, w) of the trunk's output for this spec's input size."""
    was_training = trunk.training
    trunk.eval()
    channels, h, w = trunk(torch.zeros(1, 3, spec.height, spec.width)).shape[1:]
    trunk.train(was_training)
    return int(channels), int(h), int(w)


def resize_grid(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """[..., h, w] -> [..., *size], bilinear: carries a head's spatial weights to a new input size."""
    lead, grid = t.shape[:-2], t.shape[-2:]
    if tuple(grid) == tuple(size):
        return t
    out = F.interpolate(t.reshape(1, -1, *grid).float(), size=tuple(size), mode="bilinear", align_corners=False)
    return out.reshape(*lead, *size).to(t.dtype)


class OneGo(nn.Module):
    """Whole image -> every character in one forward pass."""

    def __init__(self, spec: CaptchaSpec, arch: str = "resnet50", pretrained: bool = False,
                 head_channels: int = 256, dropout: float = 0.2, output_stride: int = 32, head: str = "flat"):
        super().__init__()
        if head not in ("flat", "lengths") or (head == "lengths" and not spec.variable):
            raise ValueError(f"one-go head {head!r}: flat, or lengths for a length range")
        self.spec = spec
        self.config = dict(head_channels=head_channels, dropout=dropout, output_stride=output_stride)
        if head != "flat":
            self.config["head"] = head
        # head "lengths": logits for every position under each possible length, and the length's own
        self.lengths = spec.length - spec.min_length + 1 if head == "lengths" else 0
        self.trunk = create_trunk(arch, pretrained, output_stride=output_stride if output_stride != 32 else None)
        channels, h, w = feature_shape(self.trunk, spec)
        self.grid = (h, w)  # feature map size, which the head's linear layer is laid out on
        # A 1x1 squeeze, then a linear layer over the whole flattened map: the head sees where
        # each stroke is, which is what tells the first character from the fifth.
        self.reduce = nn.Sequential(
            nn.Conv2d(channels, head_channels, 1, bias=False),
            nn.BatchNorm2d(head_channels),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Sequential(
            nn.Flatten(1),
            nn.Dropout(dropout),
            nn.Linear(head_channels * h * w, spec.length * spec.num_classes * max(1, self.lengths) + self.lengths),
        )

    def load_resized(self, state: dict, grid: tuple[int, int]) -> None:
        """Load weights made for another input size (feature map `grid`): the linear layer's
        weights are resampled to this map, scaled so that its output keeps its magnitude."""
        state = dict(state)
        weight = state["head.2.weight"]
        old = weight.view(weight.shape[0], -1, *grid)
        h, w = self.grid
        state["head.2.weight"] = (resize_grid(old, (h, w)) * (grid[0] * grid[1] / (h * w))).flatten(1)
        self.load_state_dict(state)

    def read(self, features: torch.Tensor) -> torch.Tensor:
        """Trunk features [B, C, h, w] -> logits [B, length, alphabet]."""
        logits = self.head(self.reduce(features))
        b, n = features.shape[0], self.lengths
        if not n:
            return logits.view(b, self.spec.length, self.spec.num_classes)
        per_length = logits[:, n:].view(b, n, self.spec.length, self.spec.num_classes)
        return length_mixture(logits[:, :n].float().log_softmax(-1), per_length, self.spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.read(self.trunk(x))


FLOOR = -30.0  # log-probability of what a length rules out: finite, so label smoothing's loss stays finite


def length_mixture(log_lengths: torch.Tensor, logits: torch.Tensor, spec: CaptchaSpec) -> torch.Tensor:
    """Each position's log-probabilities when the reader is unsure of the length.

    log_lengths [B, n]: log P(the CAPTCHA has spec.min_length + i characters); logits [B, n, L, K]:
    every position's class scores under each length. Under length l, positions before l read a
    character (never END) and the rest read END, so the result, [B, L, K] of
    log sum_l P(l) P(class at k | l), serves as logits anywhere a range model's do: a reading is the
    text before its first END. Why: a CAPTCHA generator spreads 4 characters over the width that 8
    share, so where character k sits depends on the length; one map per length lets each be simple.
    """
    n, length, classes = logits.shape[1:]
    lengths = torch.arange(spec.min_length, spec.min_length + n, device=logits.device)
    inside = torch.arange(length, device=logits.device)[None, :] < lengths[:, None]   # [n, L]
    chars = logits.float().clone()
    chars[..., spec.end] = FLOOR
    end = torch.full((classes,), FLOOR, device=logits.device)
    end[spec.end] = 0.0
    log_q = torch.where(inside[None, :, :, None], chars.log_softmax(-1), end)          # [B, n, L, K]
    return torch.logsumexp(log_lengths.float()[:, :, None, None] + log_q, dim=1)


def strip_prior(length: int, h: int, w: int, strength: float = 4.0) -> torch.Tensor:
    """[length, h, w] attention logits favouring the k-th vertical strip for position k."""
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    centres = (torch.arange(length, dtype=torch.float32) + 0.5) / length
    distance = (xs[None, :] - centres[:, None]) * length  # in units of one character slot
    return (-strength * distance ** 2)[:, None, :].expand(length, h, w).clone()


def step_prior(w: int, slots: float, spread: float = 0.5) -> torch.Tensor:
    """[2w - 1] log-weights of moving d = -(w-1)..(w-1) columns from the previous position's
    column: a bump one character slot (w / slots columns) to the right."""
    d = torch.arange(-(w - 1), w, dtype=torch.float32)
    slot = w / slots
    return -0.5 * ((d - slot) / max(spread * slot, 0.5)) ** 2


class Sequential(nn.Module):
    """One region and one classifier per character position, read one after another.

    attention "strips" (the default): position k's map is content (`attend`) plus a learned prior
    over the map, started as the k-th of `length` equal vertical strips. "chain", an option for
    length ranges, where equal strips fit only the longest CAPTCHAs: position 0 has such a prior, and
    each later position adds where the previous one looked, moved by a learned step
    (`step_bias`, log-weights per column offset, started one average character to the right),
    so the positions follow the text whatever its length, and END is read past its end.
    "lengths", what train.py uses for ranges: one set of learned strip priors per possible length
    (length l starts as l equal strips), mixed by a length classifier on the pooled features.
    """

    def __init__(self, spec: CaptchaSpec, arch: str = "resnet50", pretrained: bool = False,
                 dropout: float = 0.2, output_stride: int = 16, attention: str | None = None):
        super().__init__()
        self.spec = spec
        self.attention = attention or "strips"
        if self.attention not in ("strips", "chain", "lengths"):
            raise ValueError(f"unknown attention {attention!r}; strips, chain or lengths")
        if self.attention == "lengths" and not spec.variable:
            raise ValueError("attention 'lengths' is for a length range")
        self.config = dict(dropout=dropout, output_stride=output_stride)
        if attention:
            self.config["attention"] = self.attention
        # A finer map (stride 16) gives each of the characters more than one column to own.
        self.trunk = create_trunk(arch, pretrained, output_stride=output_stride)
        channels, h, w = feature_shape(self.trunk, spec)
        self.grid = (h, w)
        self.attend = nn.Conv2d(channels, spec.length, 1)
        if self.attention == "strips":
            self.position_bias = nn.Parameter(strip_prior(spec.length, h, w))
        elif self.attention == "lengths":  # [lengths, positions, h, w]: l equal strips for length l
            priors = [torch.cat([strip_prior(n, h, w), torch.zeros(spec.length - n, h, w)])
                      for n in range(spec.min_length, spec.length + 1)]
            self.position_bias = nn.Parameter(torch.stack(priors))
            self.length_head = nn.Linear(channels, len(priors))
        else:
            slots = (spec.min_length + spec.length) / 2  # a typical CAPTCHA's characters
            bias = torch.zeros(spec.length, h, w)
            bias[0] = strip_prior(round(slots), h, w)[0]
            self.position_bias = nn.Parameter(bias)
            self.step_bias = nn.Parameter(step_prior(w, slots))
        self.classifiers = nn.ModuleList(
            nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, spec.num_classes))
            for _ in range(spec.length)
        )

    def load_resized(self, state: dict, grid: tuple[int, int]) -> None:
        """Load weights made for another input size: the learned position maps are resampled."""
        state = dict(state)
        state["position_bias"] = resize_grid(state["position_bias"], self.grid)
        if "step_bias" in state:  # offsets of the old map's columns, stretched to this map's
            old = state["step_bias"]
            state["step_bias"] = F.interpolate(old.float()[None, None], size=2 * self.grid[1] - 1, mode="linear",
                                               align_corners=True)[0, 0].to(old.dtype)
        self.load_state_dict(state)

    def forward_with_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (logits [B, length, alphabet], maps [B, length, h, w] summing to 1 per position)."""
        return self.read_with_maps(self.trunk(x))

    def read_with_maps(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Trunk features [B, C, h, w] -> (logits, maps), as forward_with_maps."""
        b, c, h, w = features.shape
        if self.attention == "lengths":
            return self._read_by_length(features)
        scores = self.attend(features) + self.position_bias.to(features.dtype)
        if self.attention == "strips":
            maps = scores.flatten(2).float().softmax(-1).to(features.dtype)   # [B, L, h*w]
        else:
            maps = self._chain(scores.float()).flatten(2).to(features.dtype)
        regions = maps @ features.flatten(2).transpose(1, 2)  # [B, L, C] (a MatMul in ONNX; Einsum is slower there)
        logits = torch.stack([clf(regions[:, k]) for k, clf in enumerate(self.classifiers)], 1)
        return logits, maps.view(b, -1, h, w)

    def _read_by_length(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """attention "lengths": every position read under each possible length, mixed by the length
        classifier; the maps shown are those of the likeliest length."""
        b, _, h, w = features.shape
        scores = self.attend(features)[:, None] + self.position_bias.to(features.dtype)  # [B, n, L, h, w]
        maps = scores.flatten(3).float().softmax(-1).to(features.dtype)                 # [B, n, L, h*w]
        regions = maps @ features.flatten(2).transpose(1, 2)[:, None]  # [B, n, L, C]
        logits = torch.stack([clf(regions[:, :, k]) for k, clf in enumerate(self.classifiers)], 2)
        log_lengths = self.length_head(features.mean((2, 3))).float().log_softmax(-1)
        likeliest = maps[torch.arange(b), log_lengths.argmax(-1)]
        return length_mixture(log_lengths, logits, self.spec), likeliest.view(b, -1, h, w)

    def _chain(self, scores: torch.Tensor) -> torch.Tensor:
        """[B, L, h, w] scores -> maps, each position's scores plus the log of where the
        previous map's column mass lands after one learned step."""
        b, length, h, w = scores.shape
        step = self.step_bias.float().log_softmax(0).exp()  # [2w-1]: P(move d columns)
        # moves[i, j] = P(column j | previous column i) = step[j - i + w - 1]
        offsets = torch.arange(w, device=scores.device)
        moves = step[offsets[None, :] - offsets[:, None] + w - 1]
        maps = [scores[:, 0].flatten(1).softmax(-1).view(b, h, w)]
        for k in range(1, length):
            columns = maps[-1].sum(1) @ moves  # [B, w]
            prior = columns.clamp_min(1e-6).log()[:, None, :]
            maps.append((scores[:, k] + prior).flatten(1).softmax(-1).view(b, h, w))
        return torch.stack(maps, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_maps(x)[0]


class Joint(nn.Module):
    """Both heads on one trunk: one forward and backward pass trains both forms.

    `one_go` and `sequential` are ordinary models whose `trunk` is the same module, so each
    can be saved (and later loaded) on its own.
    """

    def __init__(self, spec: CaptchaSpec, arch: str = "resnet50", pretrained: bool = False,
                 output_stride: int = 16, one_go_channels: int = 128, dropout: float = 0.2,
                 attention: str | None = None, head: str = "flat"):
        super().__init__()
        self.spec = spec
        self.config = dict(output_stride=output_stride, one_go_channels=one_go_channels, dropout=dropout)
        if attention:
            self.config["attention"] = attention
        if head != "flat":
            self.config["head"] = head
        self.one_go = OneGo(spec, arch, pretrained, head_channels=one_go_channels, dropout=dropout,
                            output_stride=output_stride, head=head)
        self.sequential = Sequential(spec, arch, dropout=dropout, output_stride=output_stride, attention=attention)
        self.sequential.trunk = self.one_go.trunk

    @property
    def trunk(self) -> nn.Module:
        return self.one_go.trunk

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.trunk(x)
        return torch.cat([self.one_go.read(features), self.sequential.read_with_maps(features)[0]], 1)

    def part(self, form: str) -> nn.Module:
        return getattr(self, form_name(form))


def build_model(form: str, spec: CaptchaSpec, arch: str = "resnet50", pretrained: bool = False,
                **config) -> nn.Module:
    """The model for `form` (or "joint"); `config` holds head options (stored in weights files as written)."""
    if form == "joint":
        return Joint(spec, arch=arch, pretrained=pretrained, **config)
    cls = OneGo if form_name(form) == "one_go" else Sequential
    return cls(spec, arch=arch, pretrained=pretrained, **config)
