"""The one training core: batch -> input, augmentation, loss, accuracy, optimiser, schedule, time budget.

train.py and `python -m captcha bench --train` use these and nothing else, so a model is trained
on exactly what it will be served (`spec.normalize` of `spec.geometry`'s pixels) and every run
optimises the same loss with the same schedule.
"""
from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from .spec import normalize

# The small random affine of augmentation, in fractions of the model input: the same CAPTCHA a few
# pixels off. Scale stays within 3%: in the ImageCaptcha style c/C, o/O, x/X ... differ only by stroke
# weight and fine shape (the library stretches every glyph to one box per font size).
SCALE, TILT, SHIFT = 0.03, 0.05, 0.04  # scale +-3%, tilt +-0.05 rad (about 3 degrees), shift +-4%
# A few hundred real images need more variety than a generator's endless stream: at strength s the
# affine ranges are s times the above, and contrast and brightness vary by +-JITTER * (s - 1)
# (none at strength 1, the generated-data default).
JITTER = 0.1


def to_input(pixels: torch.Tensor, device, augment: float = 0.0, generator: torch.Generator | None = None):
    """uint8 batch [B, 3, H, W] (from spec.geometry) -> normalised model input on `device`,
    augmented at strength `augment` (0: not at all; see JITTER)."""
    x = normalize(pixels.to(device, non_blocking=True))
    if augment:
        x = random_affine(x, generator, float(augment))
        if augment > 1:
            x = random_tone(x, generator, JITTER * (float(augment) - 1))
    return x.contiguous(memory_format=torch.channels_last)


def random_tone(x: torch.Tensor, generator: torch.Generator | None, amount: float) -> torch.Tensor:
    """Each image's contrast and brightness changed by up to +-amount (in the normalised scale)."""
    b = x.shape[0]
    u = torch.rand(2, b, 1, 1, 1, generator=generator, device=generator.device if generator else "cpu").to(x.device) * 2 - 1
    return x * (1 + amount * u[0]).to(x.dtype) + (2 * amount * u[1]).to(x.dtype)


def random_affine(x: torch.Tensor, generator: torch.Generator | None = None, strength: float = 1.0) -> torch.Tensor:
    """Each image of a batch scaled, tilted and shifted at random (strength x SCALE, TILT, SHIFT),
    edges repeated.

    Run after normalisation: bilinear sampling commutes with the per-channel affine normalisation,
    so this equals augmenting the pixels first, without a second normalisation.
    """
    b, _, h, w = x.shape
    u = torch.rand(4, b, generator=generator, device=generator.device if generator else "cpu").to(x.device) * 2 - 1
    u = u * strength
    scale, angle = 1 + SCALE * u[0], TILT * u[1]
    tx, ty = 2 * SHIFT * u[2], 2 * SHIFT * u[3]  # affine_grid's coordinates span 2 per side
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin * h / w, tx], 1),
                         torch.stack([sin * w / h, cos, ty], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def loss_fn(logits: torch.Tensor, targets: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy per character; a joint model's logits hold both forms, so targets are repeated."""
    targets = targets.repeat(1, logits.shape[1] // targets.shape[1])
    return F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), label_smoothing=smoothing)


def hits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, forms, length] booleans: which characters each form read right (a joint model has two forms)."""
    pred = logits.argmax(-1).view(len(targets), -1, targets.shape[1])
    return pred == targets[:, None]


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """AdamW; biases and norm weights (1-d) are not decayed."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=lr,
                             fused=next(model.parameters()).is_cuda)


def one_cycle(step: int, total: int, warmup: float = 0.1) -> float:
    """The learning-rate multiplier at `step` of `total`: from 1/20 up to 1 over the first `warmup`
    share of the steps, then down to 1/4000, both halves cosine (torch's OneCycleLR, div_factor 20,
    final_div_factor 200), as a plain function so a time budget can set `total` after the run began."""
    start, end = 1 / 20, 1 / 4000
    peak = max(1.0, warmup * total - 1)  # the step at the top, as OneCycleLR counts
    if step <= peak:
        return end_cos(start, 1.0, step / peak)
    return end_cos(1.0, end, min(1.0, (step - peak) / max(1.0, total - 1 - peak)))


def end_cos(a: float, b: float, frac: float) -> float:
    """Cosine from a (frac 0) to b (frac 1)."""
    return b + (a - b) * (1 + math.cos(math.pi * frac)) / 2


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def train_step(model, optimizer, x, y, smoothing: float, autocast) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on a batch; returns (loss, logits). Gradients are clipped at norm 2."""
    with autocast:
        logits = model(x)
    loss = loss_fn(logits, y, smoothing)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 2.0)
    optimizer.step()
    return loss, logits


class TimeBudget:
    """Fits a run to `minutes` of wall time, from the first training step to the saved best weights.

    The run trains `probe` steps at the schedule's starting rate, validates (and saves) once, and
    `plan` then sizes the schedule from what those took: each further step costs its own time plus
    its share of the validations (one every `eval_every` steps, and a last one at the end). train.py
    plans again at a later validation when the pace since then has drifted.
    `clock` is injectable so the arithmetic can be tested without waiting.
    """

    def __init__(self, minutes: float, clock=time.monotonic, margin: float = 0.03):
        if not minutes or minutes <= 0:
            raise ValueError("--minutes must be more than 0")
        self.seconds, self.clock, self.margin = minutes * 60, clock, margin
        self.start = None

    def begin(self) -> None:
        self.start = self.clock()

    def elapsed(self) -> float:
        return 0.0 if self.start is None else self.clock() - self.start

    def left(self) -> float:
        return max(0.0, self.seconds - self.elapsed())

    def plan(self, steps_done: int, step_seconds: float, eval_seconds: float, eval_every: int | None) -> int:
        """Total steps that fit: `steps_done` plus what the time left pays for (at least one more)."""
        left = self.left() - self.margin * self.seconds - eval_seconds  # the final validation and save
        per_step = step_seconds + (eval_seconds / eval_every if eval_every else 0.0)
        return steps_done + max(1, int(left / max(per_step, 1e-9)))


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    return f"{seconds // 60}:{seconds % 60:02d}"
