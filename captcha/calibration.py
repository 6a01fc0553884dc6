"""Confidence that means what it says: a temperature per form, and the figures that show it holds.

Training with label smoothing keeps every character below ~95%, so an uncalibrated 5-character
reading says "75% sure" while such readings are right ~97% of the time. Dividing a form's logits by
one temperature T keeps every reading's text (the argmax of each position) and makes the full-string
confidence (the product of the positions' probabilities, the end symbol included) match how often
the whole reading is right. T is fitted on validation images by the full-string log loss, with a
weak prior on log T and bounds, so a small validation set with few or no errors cannot drive T to 0.
"""
from __future__ import annotations

import math

import numpy as np

BOUNDS = (0.25, 4.0)  # temperatures outside this range mean the fit had too little to go on
PRIOR_SIGMA = 0.5  # prior on log T: normal around 0 (no change); weighs like a few images, so it
#                   only matters when the fit set is small (measured: 30-100 images, few or no errors)
COVERAGES = (0.5, 0.8, 0.9, 0.95, 1.0)


def string_confidence(logits: np.ndarray, temperature: float, used: np.ndarray | None = None) -> np.ndarray:
    """[n, length, classes] logits -> each reading's full-string confidence at `temperature`.
    `used` (n,) limits the product to the first positions (a length range: the text and its end)."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(-1, keepdims=True)
    log_max = -np.log(np.exp(z).sum(-1))  # log of the top probability at each position
    if used is not None:
        log_max = np.where(np.arange(logits.shape[1])[None] < used[:, None], log_max, 0.0)
    return np.exp(log_max.sum(-1))


def fit_temperature(logits: np.ndarray, correct: np.ndarray, used: np.ndarray | None = None) -> float:
    """The temperature minimising the full-string log loss plus the prior, within BOUNDS."""
    correct = np.asarray(correct, bool)

    def loss(log_t: float) -> float:
        c = np.clip(string_confidence(logits, math.exp(log_t), used), 1e-9, 1 - 1e-9)
        nll = -(np.log(c[correct]).sum() + np.log(1 - c[~correct]).sum())
        return nll + log_t ** 2 / (2 * PRIOR_SIGMA ** 2)

    lo, hi = math.log(BOUNDS[0]), math.log(BOUNDS[1])
    grid = np.linspace(lo, hi, 61)
    best = grid[int(np.argmin([loss(g) for g in grid]))]
    step = grid[1] - grid[0]
    a, b = max(lo, best - step), min(hi, best + step)
    for _ in range(40):  # golden-section refinement around the best grid point
        m1, m2 = b - 0.618 * (b - a), a + 0.618 * (b - a)
        if loss(m1) < loss(m2):
            b = m2
        else:
            a = m1
    return round(math.exp((a + b) / 2), 4)


def ece(confidence, correct, bins: int = 10) -> float:
    """Expected calibration error: |mean confidence - accuracy| per equal-width bin, weighted by its share."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    if not len(confidence):
        return 0.0
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return float(sum((which == k).mean() * abs(confidence[which == k].mean() - correct[which == k].mean())
                     for k in range(bins) if (which == k).any()))


def ece_interval(confidence, correct, bins: int = 10, draws: int = 500, seed: int = 0) -> tuple[float, float]:
    """A 95% bootstrap interval of the ECE."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    if not len(confidence):
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    values = [ece(confidence[i], correct[i], bins) for i in (rng.integers(0, len(confidence), len(confidence))
                                                            for _ in range(draws))]
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def risk_coverage(confidence, correct, coverages=COVERAGES) -> list[dict]:
    """Accuracy of the most confident readings, keeping each share of them."""
    order = np.argsort(-np.asarray(confidence, float), kind="stable")
    right = np.asarray(correct, float)[order]
    rows = []
    for share in coverages:
        kept = max(1, round(share * len(right)))
        rows.append({"coverage": share, "kept": kept, "accuracy": float(right[:kept].mean()) if len(right) else 0.0})
    return rows


def threshold_for(confidence, correct, accuracy: float) -> dict | None:
    """The lowest confidence threshold whose kept readings are right at least `accuracy` of the
    time, with the share kept; None when even the most confident reading misses it."""
    confidence = np.asarray(confidence, float)
    order = np.argsort(-confidence, kind="stable")
    cumulative = np.cumsum(np.asarray(correct, float)[order]) / np.arange(1, len(order) + 1)
    good = np.nonzero(cumulative >= accuracy)[0]
    if not len(good):
        return None
    last = int(good.max())
    return {"threshold": float(confidence[order[last]]), "coverage": (last + 1) / len(order)}


def trust(confidence, correct) -> dict:
    """How far to trust a set of readings' confidences: ECE (with a 95% interval), mean confidence
    against accuracy, the risk-coverage table, and the thresholds for 99% and 99.5% accuracy."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, bool)
    low, high = ece_interval(confidence, correct)
    return {"ece": ece(confidence, correct), "ece_interval": [low, high],
            "mean_confidence": float(confidence.mean()) if len(confidence) else 0.0,
            "accuracy": float(correct.mean()) if len(correct) else 0.0,
            "risk_coverage": risk_coverage(confidence, correct),
            "thresholds": {str(a): threshold_for(confidence, correct, a) for a in (0.99, 0.995)},
            "bins": reliability_bins(confidence, correct),
            "curve": risk_coverage(confidence, correct, [k / 100 for k in range(1, 101)])}


def reliability_bins(confidence, correct, bins: int = 10) -> list[dict]:
    """Per equal-width confidence bin: its range, count, mean confidence and accuracy (the diagram)."""
    confidence, correct = np.asarray(confidence, float), np.asarray(correct, float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{"low": k / bins, "high": (k + 1) / bins, "count": int((which == k).sum()),
             "confidence": float(confidence[which == k].mean()) if (which == k).any() else None,
             "accuracy": float(correct[which == k].mean()) if (which == k).any() else None}
            for k in range(bins)]


def sure_threshold(confidence, correct, accuracy: float) -> float:
    """The confidence `sure` needs for `accuracy`: the stricter of what the fit images show (the
    lowest threshold whose kept readings were right that often) and what the calibrated
    confidences promise (the lowest whose kept readings' mean confidence reaches it). With few
    or no errors seen, the first alone would call everything sure; the second still holds.
    1.0 (never sure) when neither reaches `accuracy`."""
    confidence = np.asarray(confidence, float)
    seen = threshold_for(confidence, correct, accuracy)
    promised = threshold_for(confidence, confidence, accuracy)
    if seen is None or promised is None:
        return 1.0
    return max(seen["threshold"], promised["threshold"])


def judge(logits: np.ndarray, spec, labels) -> tuple[np.ndarray, np.ndarray]:
    """(correct, used) of each reading of `logits`: whether its text is the label, and how many
    positions its confidence spans (the text and, for a length range, its END)."""
    best = logits.argmax(-1)
    correct = np.array([spec.decode(b) == label for b, label in zip(best, labels)], bool)
    used = np.array([spec.read_length(list(b)) for b in best])
    return correct, used


def fit(logits: dict, specs: dict, labels: list[str], accuracy: float = 0.99, source: str = "",
        groups=None) -> dict:
    """form -> the calibration to store with its weights, fitted on labelled readings: the
    temperature, the threshold for `accuracy` (per form, and `answer_threshold` for the more
    confident of the forms), and the before/after figures on the fit images.

    `groups` (one name per image, e.g. its folder) makes each threshold the strictest of the
    groups', so `sure` keeps its accuracy on each kind of image fitted on, not only on their mix."""
    groups = np.asarray(groups if groups is not None else [""] * len(labels))

    def threshold(confidence, correct):
        return round(max(sure_threshold(confidence[groups == g], correct[groups == g], accuracy)
                         for g in np.unique(groups)), 6)

    out, confidences, rights = {}, {}, {}
    for form, z in logits.items():
        correct, used = judge(z, specs[form], labels)
        t = fit_temperature(z, correct, used)
        before, after = string_confidence(z, 1.0, used), string_confidence(z, t, used)
        confidences[form], rights[form] = after, correct
        out[form] = {"temperature": t, "threshold": threshold(after, correct),
                     "accuracy_target": accuracy, "count": len(labels), "errors": int((~correct).sum()),
                     "ece_before": round(ece(before, correct), 4), "ece_after": round(ece(after, correct), 4),
                     "fitted_on": source}
    stacked = np.stack(list(confidences.values()))
    chosen = stacked.argmax(0)  # the answer: the more confident form (the first on a tie)
    answer_conf = stacked.max(0)
    answer_right = np.stack(list(rights.values()))[chosen, np.arange(len(labels))]
    answer_threshold = threshold(answer_conf, answer_right)
    for calibration in out.values():
        calibration["answer_threshold"] = answer_threshold
    return out


def calibrate(recognizer, samples, accuracy: float = 0.99, source: str = "", groups=None) -> dict:
    """Fit every loaded form of `recognizer` on labelled `samples` (captcha.data.Sample) and store
    the result in each form's weights file; returns form -> calibration."""
    from .weights import write_calibration
    if not samples:
        raise ValueError("calibration needs labelled images")
    logits = recognizer.logits([s.path for s in samples])
    result = fit(logits, {f: i.spec for f, i in recognizer.infos.items()}, [s.label for s in samples],
                 accuracy, source, groups)
    for form, calibration in result.items():
        write_calibration(recognizer.infos[form].path, calibration)
        recognizer.infos[form].calibration = calibration
    return result
