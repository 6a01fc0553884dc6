"""The one training core: the image -> tensor road, augmentation, loss, schedule and time budget."""
import numpy as np
import pytest
import torch
from PIL import Image

from captcha import training
from captcha.spec import MEAN, STD, CaptchaSpec, normalize

SPEC = CaptchaSpec(alphabet="0123456789", length=4, height=24, width=64, crop=(0, 0.25, 1, 0.75))


def test_preprocess_is_normalize_of_geometry_and_matches_the_float32_formula():
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 120, 3), dtype=np.uint8))
    pixels = SPEC.geometry(image)
    assert pixels.dtype == torch.uint8 and pixels.shape == (3, 24, 64)
    expected = (pixels.permute(1, 2, 0).numpy().astype(np.float32) / 255.0 - np.asarray(MEAN, np.float32)) \
        / np.asarray(STD, np.float32)
    got = SPEC.preprocess(image)
    assert np.array_equal(got.numpy(), expected.transpose(2, 0, 1))  # bit for bit
    assert torch.equal(normalize(pixels[None].repeat(3, 1, 1, 1))[1], got)  # a batch reads the same
    batch = pixels[None].repeat(3, 1, 1, 1).numpy()
    assert np.array_equal(normalize(batch)[2], got.numpy())  # the numpy road, the same bits
    with pytest.raises(TypeError, match="uint8"):
        normalize(got)
    with pytest.raises(TypeError, match="uint8"):
        normalize(got.numpy())


def test_to_input_normalises_on_the_device_and_augments_only_when_asked():
    pixels = torch.stack([SPEC.geometry(Image.new("RGB", (64, 48), (200, 100, 50)))] * 2)
    x = training.to_input(pixels, "cpu")
    assert torch.equal(x, normalize(pixels)) and x.is_contiguous(memory_format=torch.channels_last)
    a = training.to_input(pixels, "cpu", augment=True, generator=torch.Generator().manual_seed(1))
    b = training.to_input(pixels, "cpu", augment=True, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)  # seeded: a resumed run augments as the first one did


def test_random_affine_moves_content_a_little_and_repeats_the_edges():
    x = torch.zeros(16, 3, 32, 64)
    x[:, :, 12:20, 28:36] = 1.0  # a square in the middle
    y = training.random_affine(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)
    mass = y.sum((1, 2, 3)) / x.sum((1, 2, 3))
    assert ((mass > 0.85) & (mass < 1.15)).all()  # within 3% scale: the square keeps its size
    flat = torch.full((4, 3, 32, 64), -1.7)
    assert torch.allclose(training.random_affine(flat, torch.Generator().manual_seed(0)), flat)  # no black border


def test_loss_repeats_targets_for_a_joint_models_two_forms():
    targets = torch.tensor([[1, 2, 3, 4]])
    logits = torch.nn.functional.one_hot(torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4]]), 10).float() * 20
    assert training.loss_fn(logits, targets) < 1e-6
    assert training.hits(logits, targets).shape == (1, 2, 4) and training.hits(logits, targets).all()


def test_one_cycle_is_torchs_one_cycle_schedule():
    total, warmup, lr = 200, 0.1, 1e-3
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=warmup,
                                                div_factor=20, final_div_factor=200)
    theirs = []
    for _ in range(total):
        theirs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    ours = [lr * training.one_cycle(step, total, warmup) for step in range(total)]
    assert ours[0] == pytest.approx(lr / 20) and max(ours) == pytest.approx(lr)
    assert np.allclose(ours, theirs, rtol=1e-9, atol=0)
    assert training.one_cycle(total - 1, total, warmup) == pytest.approx(1 / 4000)


def test_time_budget_plans_the_steps_that_fit():
    now = [100.0]
    budget = training.TimeBudget(10, clock=lambda: now[0], margin=0.0)  # 600 s
    budget.begin()
    now[0] += 60  # the probe and its validation
    # 540 s left, 20 s for the last validation: 520 s at 1 s a step + 20 s per 100 steps -> 433 more
    assert budget.plan(50, step_seconds=1.0, eval_seconds=20.0, eval_every=100) == 50 + 433
    assert budget.left() == 540 and training.format_seconds(budget.left()) == "9:00"
    now[0] += 1000
    assert budget.plan(50, 1.0, 20.0, 100) == 51  # over budget: one more step, then the end
    with pytest.raises(ValueError):
        training.TimeBudget(0)
