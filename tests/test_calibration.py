"""The confidence calibration: the temperature fit, its figures, and the thresholds for `sure`,
on toy models whose over- or under-confidence is known."""
import numpy as np
import pytest

from captcha import calibration as C
from captcha.spec import CaptchaSpec


def toy(n=3000, sharpness=1.0, seed=0):
    """A toy reader of 5 positions over 10 classes whose true probabilities are softmax(logits),
    right about 80% of the time; `sharpness` > 1 makes its stated confidences overconfident,
    < 1 underconfident (the true temperature is `sharpness`). Returns (stated logits, correct)."""
    rng = np.random.default_rng(seed)
    true = rng.normal(0, 1, (n, 5, 10)) * 1.5
    true[..., 0] += rng.uniform(5, 12, (n, 5))  # class 0 is usually the answer; some positions are hard
    p = np.exp(true - true.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    labels = (p.cumsum(-1) > rng.random((n, 5, 1))).argmax(-1)  # each truth drawn from p
    return true * sharpness, (true.argmax(-1) == labels).all(1)


@pytest.mark.parametrize("sharpness", [2.5, 0.4])  # over- and under-confident
def test_fit_finds_the_temperature_and_lowers_the_ece(sharpness):
    logits, correct = toy(sharpness=sharpness)
    before = C.ece(C.string_confidence(logits, 1.0), correct)
    t = C.fit_temperature(logits, correct)
    after = C.ece(C.string_confidence(logits, t), correct)
    assert t == pytest.approx(sharpness, rel=0.15)  # the true temperature is the sharpness
    assert before > 0.1 and after < 0.03 and after < before / 4
    held_logits, held_correct = toy(sharpness=sharpness, seed=1)  # and it holds on other readings
    assert C.ece(C.string_confidence(held_logits, t), held_correct) < 0.03


@pytest.mark.parametrize("sharpness", [2.5, 0.4])
def test_a_small_fit_set_with_few_or_no_errors_stays_sound(sharpness):
    logits, correct = toy(sharpness=sharpness)
    uncalibrated = C.ece(C.string_confidence(logits, 1.0), correct)
    eces = []
    for seed in range(10):  # 30 validation images: a few errors, or none
        pick = np.random.default_rng(seed).choice(len(correct), 30, replace=False)
        t = C.fit_temperature(logits[pick], correct[pick])
        assert C.BOUNDS[0] <= t <= C.BOUNDS[1]
        eces.append(C.ece(C.string_confidence(logits, t), correct))
    assert np.median(eces) < 0.75 * uncalibrated  # better than no calibration, typically much better
    right = np.nonzero(correct)[0][:20]  # 20 images, none misread: nothing says it is ever wrong
    t = C.fit_temperature(logits[right], correct[right])
    assert C.BOUNDS[0] < t <= 1.0  # sharper, never running to the bound, let alone 0
    if sharpness > 1:  # overconfident already: the prior keeps it from sharpening much
        assert t > 0.8


def test_ece_risk_coverage_and_thresholds_by_hand():
    confidence = np.array([0.95, 0.9, 0.8, 0.6, 0.3])
    correct = np.array([1, 1, 0, 1, 0], bool)
    # bins: 0.9-1.0 {0.95, 0.9} acc 1; 0.8 acc 0; 0.6 acc 1; 0.3 acc 0
    assert C.ece(confidence, correct) == pytest.approx((2 * 0.075 + 0.8 + 0.4 + 0.3) / 5)
    rows = C.risk_coverage(confidence, correct, (0.4, 0.6, 1.0))
    assert [(r["kept"], r["accuracy"]) for r in rows] == [(2, 1.0), (3, pytest.approx(2 / 3)), (5, 0.6)]
    assert C.threshold_for(confidence, correct, 0.99) == {"threshold": 0.9, "coverage": 0.4}
    assert C.threshold_for(confidence, correct, 0.75) == {"threshold": 0.6, "coverage": 0.8}
    assert C.threshold_for(confidence, ~correct, 0.5) is None or C.threshold_for(confidence, ~correct, 0.5)["coverage"] < 1
    low, high = C.ece_interval(confidence, correct)
    assert low <= C.ece(confidence, correct) <= high


def test_sure_threshold_is_the_stricter_of_seen_and_promised():
    confidence = np.linspace(0.5, 1.0, 200)
    everything_right = np.ones(200, bool)
    # nothing seen wrong would call everything sure; the confidences themselves say not below ~0.98
    t = C.sure_threshold(confidence, everything_right, 0.99)
    assert t == pytest.approx(0.98, abs=0.01)
    assert C.sure_threshold(np.full(10, 0.5), everything_right[:10], 0.99) == 1.0  # never promised: never sure


def test_fit_stores_each_form_and_the_answer_and_the_strictest_group():
    spec = CaptchaSpec("0123456789", 5)
    easy, easy_right = toy(n=1500, sharpness=1.5, seed=2)
    hard, hard_right = toy(n=1500, sharpness=1.5, seed=3)
    hard[~hard_right] *= 1.5  # the hard group's errors are more confident
    logits = np.concatenate([easy, hard])
    labels = ["".join(str(int(i)) for i in row) for row in logits.argmax(-1)]
    right = np.concatenate([easy_right, hard_right])
    labels = [label if ok else "9" * 5 for label, ok in zip(labels, right)]  # the misread ones
    groups = ["easy"] * 1500 + ["hard"] * 1500
    pooled = C.fit({"one_go": logits}, {"one_go": spec}, labels, 0.99)["one_go"]
    grouped = C.fit({"one_go": logits}, {"one_go": spec}, labels, 0.99, groups=groups)["one_go"]
    assert pooled["count"] == 3000 and pooled["errors"] == int((~right).sum())
    assert pooled["ece_after"] < pooled["ece_before"]
    conf = C.string_confidence(logits, grouped["temperature"])
    each = [C.sure_threshold(conf[i:i + 1500], right[i:i + 1500], 0.99) for i in (0, 1500)]
    assert grouped["threshold"] == pytest.approx(max(each), abs=1e-6) and each[1] > each[0]
    assert pooled["threshold"] < grouped["threshold"]
    assert pooled["answer_threshold"] == pooled["threshold"]  # one form: the answer is its reading


def test_a_length_range_counts_the_end_in_the_confidence():
    spec = CaptchaSpec("ab", "1-3")  # classes a, b, END
    logits = np.log(np.array([[[0.8, 0.1, 0.1], [0.1, 0.1, 0.8], [0.1, 0.1, 0.8]]]))  # "a", then END
    correct, used = C.judge(logits, spec, ["a"])
    assert correct.tolist() == [True] and used.tolist() == [2]
    assert C.string_confidence(logits, 1.0, used)[0] == pytest.approx(0.8 * 0.8)
