"""Accuracy of a Recognizer on labelled images: full-string, character error rate, per-character,
case-insensitive, per length, the most frequent confusions, and how far each confidence can be
trusted (calibration error, risk-coverage, thresholds; captcha/calibration.py). The answer is
graded beside the forms when both are loaded, with what the forms agreeing adds to its confidence.

Readings and labels may differ in length (a length range, or two forms reading one image
differently), so characters are compared through an edit-distance alignment: the character error
rate is (substitutions + insertions + deletions) / label characters, and confusions are the
substitutions of that alignment.
"""
from __future__ import annotations

from collections import Counter, defaultdict

import numpy as np

from .calibration import threshold_for, trust
from .data import Sample
from .recognizer import Recognizer


def align(truth: str, read: str) -> list[tuple[str | None, str | None]]:
    """A minimal edit-distance alignment: (truth char or None, read char or None) pairs."""
    n, m = len(truth), len(read)
    cost = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = i
    for j in range(m + 1):
        cost[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            cost[i][j] = min(cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]), cost[i - 1][j] + 1, cost[i][j - 1] + 1)
    pairs, i, j = [], n, m
    while i or j:
        if i and j and cost[i][j] == cost[i - 1][j - 1] + (truth[i - 1] != read[j - 1]):
            pairs.append((truth[i - 1], read[j - 1]))
            i, j = i - 1, j - 1
        elif i and cost[i][j] == cost[i - 1][j] + 1:
            pairs.append((truth[i - 1], None))
            i -= 1
        else:
            pairs.append((None, read[j - 1]))
            j -= 1
    return pairs[::-1]


def evaluate(recognizer: Recognizer, samples: list[Sample], batch_size: int = 32, progress=None,
             fold_case: bool = False, min_confidence: float | None = None) -> dict:
    """{form or "answer": {count, string_accuracy, cer, char_accuracy, case_insensitive_accuracy,
    by_length, confusions, errors, trust, sure}}, plus "agreement" with both forms loaded.
    `fold_case` compares in lower case (labels read case-insensitively)."""
    graded = [*recognizer.models, *(["answer"] if len(recognizer.models) > 1 else [])]
    stats = {form: {"strings": 0, "nocase": 0, "edits": 0, "same": 0, "confusions": Counter(), "errors": [],
                    "by_length": defaultdict(lambda: [0, 0]), "confidence": [], "right": [], "sure": []}
             for form in graded}
    agree = []
    label_chars = 0
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        predictions = recognizer.predict_batch([s.path for s in chunk], batch_size, min_confidence=min_confidence)
        for sample, prediction in zip(chunk, predictions):
            label = sample.label.lower() if fold_case else sample.label
            label_chars += len(label)
            readings = prediction.readings()
            if "answer" in stats:
                readings["answer"] = prediction.answer
                agree.append(prediction.answer.forms_agree)
            for form, reading in readings.items():
                s, text = stats[form], (reading.text.lower() if fold_case else reading.text)
                right = text == label
                s["confidence"].append(reading.confidence)
                s["right"].append(right)
                s["sure"].append(reading.sure)
                s["strings"] += right
                s["nocase"] += text.lower() == label.lower()
                s["by_length"][len(label)][0] += 1
                s["by_length"][len(label)][1] += right
                for truth, read in align(label, text):
                    s["edits"] += truth != read
                    s["same"] += truth == read
                    if truth is not None and read is not None and truth != read:
                        s["confusions"][(truth, read)] += 1
                if not right:
                    s["errors"].append({"file": str(sample.path), "label": label, "read": text,
                                        "confidence": round(reading.confidence, 4)})
        if progress:
            progress(len(chunk))
    n, chars = max(len(samples), 1), max(label_chars, 1)
    return {form: {
        "count": len(samples),
        "string_accuracy": s["strings"] / n,
        "cer": s["edits"] / chars,
        "char_accuracy": s["same"] / chars,
        "case_insensitive_accuracy": s["nocase"] / n,
        "by_length": {length: {"count": c, "string_accuracy": r / c} for length, (c, r) in sorted(s["by_length"].items())},
        "confusions": [{"truth": t, "read": r, "count": c} for (t, r), c in s["confusions"].most_common(20)],
        "errors": s["errors"],
        "trust": trust(s["confidence"], s["right"]),
        "sure": sure_figures(s["sure"], s["right"]),
    } for form, s in stats.items()} | ({"agreement": agreement(stats["answer"], agree)} if agree else {})


def sure_figures(sure: list, right: list) -> dict | None:
    """The share of readings called sure, and how often those were right (None: no threshold)."""
    if not sure or None in sure:
        return None
    sure, right = np.array(sure, bool), np.array(right, bool)
    return {"share": float(sure.mean()), "accuracy": float(right[sure].mean()) if sure.any() else None}


def agreement(answer: dict, agree: list) -> dict:
    """What the forms agreeing adds: the answer's accuracy when they agree and when they do not,
    and the share kept at 99.5% when agreeing answers rank first (then by confidence) against
    ranking by confidence alone."""
    agree, right = np.array(agree, bool), np.array(answer["right"], bool)
    confidence = np.array(answer["confidence"], float)
    by_confidence = threshold_for(confidence, right, 0.995)
    agreeing_first = threshold_for(confidence + agree, right, 0.995)
    return {"share_agree": float(agree.mean()),
            "accuracy_agree": float(right[agree].mean()) if agree.any() else None,
            "accuracy_disagree": float(right[~agree].mean()) if (~agree).any() else None,
            "coverage_995_by_confidence": by_confidence["coverage"] if by_confidence else 0.0,
            "coverage_995_agreeing_first": agreeing_first["coverage"] if agreeing_first else 0.0}
