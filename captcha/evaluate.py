"""Accuracy of a Recognizer on a labelled folder: full-string, per-character, case-insensitive, confusions."""
from __future__ import annotations

from collections import Counter

from .data import Sample
from .recognizer import Recognizer


def evaluate(recognizer: Recognizer, samples: list[Sample], batch_size: int = 32, progress=None) -> dict:
    """{form: {string_accuracy, char_accuracy, case_insensitive_accuracy, confusions, errors}}."""
    stats = {form: {"strings": 0, "chars": 0, "nocase": 0, "confusions": Counter(), "errors": []}
             for form in recognizer.models}
    for start in range(0, len(samples), batch_size):
        chunk = samples[start:start + batch_size]
        for sample, prediction in zip(chunk, recognizer.predict_batch([s.path for s in chunk], batch_size)):
            for form, reading in prediction.readings().items():
                s = stats[form]
                s["strings"] += reading.text == sample.label
                s["nocase"] += reading.text.lower() == sample.label.lower()
                for truth, read in zip(sample.label, reading.text):
                    s["chars"] += truth == read
                    if truth != read:
                        s["confusions"][(truth, read)] += 1
                if reading.text != sample.label:
                    s["errors"].append({"file": sample.path.name, "label": sample.label, "read": reading.text,
                                        "confidence": round(reading.confidence, 4)})
        if progress:
            progress(len(chunk))
    n = len(samples)
    length = len(samples[0].label) if samples else 1
    return {form: {
        "count": n,
        "string_accuracy": s["strings"] / n,
        "char_accuracy": s["chars"] / (n * length),
        "case_insensitive_accuracy": s["nocase"] / n,
        "confusions": [{"truth": t, "read": r, "count": c} for (t, r), c in s["confusions"].most_common(20)],
        "errors": s["errors"],
    } for form, s in stats.items()}
