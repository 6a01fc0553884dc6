"""Streamlit front end: `streamlit run streamlit_app.py`.

Presentation only: every reading comes from captcha.Recognizer, in this process (no server
to start beside it). Weights come from the sidebar: a folder, a .safetensors file or a Hub
repo id `user/name`; the default is weights/ beside this file, or $CAPTCHA_WEIGHTS.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st

from captcha import batch
from captcha.errors import CaptchaError
from captcha.images import IMAGE_EXTENSIONS
from captcha.overlay import attention_panels
from captcha.recognizer import Recognizer

HERE = Path(__file__).resolve().parent
SAMPLES = sorted(p for p in (HERE / "data").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
FORM_NAMES = {"one_go": "One-go", "sequential": "Sequential"}


@st.cache_resource(show_spinner="Loading weights...")
def load(weights: str) -> Recognizer:
    """One Recognizer per weights path for the whole server: loading takes seconds, reading milliseconds."""
    return Recognizer.from_pretrained(weights)


def sidebar() -> tuple[Recognizer | None, bool, float | None]:
    st.sidebar.header("Model")
    weights = st.sidebar.text_input(
        "Weights", os.environ.get("CAPTCHA_WEIGHTS", str(HERE / "weights")),
        help="A weights folder, a .safetensors file, or a Hugging Face Hub model repo id (user/name).")
    try:
        rec = load(weights.strip())
    except CaptchaError as e:
        st.error(f"Cannot load the weights: {e}")
        return None, False, None
    for form, info in rec.describe().items():
        spec = info["spec"]
        st.sidebar.markdown(f"**{FORM_NAMES[form]}**: {info['arch']}, {spec['length']} characters of "
                            f"{len(spec['alphabet'])}, input {spec['height']}x{spec['width']} (HxW)")
    attention = "sequential" in rec.models and st.sidebar.checkbox(
        "Show where the sequential form looked", key="attention",
        help="One panel per character position, where it looked in red.")
    stored = rec.threshold()
    minimum = st.sidebar.slider(
        "Sure at confidence of at least", 0.0, 1.0, stored if stored is not None else 0.9, 0.005, format="%.3f",
        key="min_confidence", disabled=stored is None and not st.session_state.get("override"),
        help="The calibrated confidence an answer needs to be called sure. Default: the level that read 99% "
             "right on the images these weights were calibrated on.")
    if stored is None:
        st.sidebar.caption("These weights carry no calibration (python -m captcha calibrate).")
        minimum = minimum if st.sidebar.checkbox("Use this threshold anyway", key="override") else None
    return rec, attention, (None if minimum == stored else minimum)


def inputs() -> list[tuple[str, object]]:
    """(name, source) for every upload and every chosen sample; sources are bytes or paths."""
    uploads = st.file_uploader(f"Upload CAPTCHAs or zips of them (at most {batch.MAX_BATCH} images, "
                               f"{batch.MAX_UPLOAD_MB} MB per file)",
                               type=[e.lstrip(".") for e in (*IMAGE_EXTENSIONS, ".zip")],
                               accept_multiple_files=True, max_upload_size=batch.MAX_UPLOAD_MB)
    chosen = st.multiselect("...or try samples from data/ (the file name is the answer)",
                            [p.name for p in SAMPLES], key="samples", placeholder="Pick sample images")
    return [(f.name, f.getvalue()) for f in uploads or []] + [(name, HERE / "data" / name) for name in chosen]


def show_answer(answer) -> None:
    """The string to submit, first: sure, unsure (and why), or uncalibrated."""
    text = f"**Answer: `{answer.text or ' '}`** · {answer.confidence:.1%}"
    if answer.sure:
        st.success(f"{text} · sure: submit it", icon="✅")
    elif answer.sure is False:
        st.warning(f"{text} · **unsure**: ask for a new CAPTCHA. {answer.reason().capitalize()}.", icon="⚠️")
    else:
        st.info(f"{text} · {answer.reason()}", icon="ℹ️")


def show(name: str, image, pred, attention: bool) -> None:
    """One image: the picture, the answer, both readings with confidences, per-character confidences, the time."""
    st.subheader(name, divider="gray")
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.image(image, width=160)
    with right:
        show_answer(pred.answer)
        for col, (form, r) in zip(st.columns(2), pred.readings().items()):
            col.metric(f"{FORM_NAMES[form]} · {r.confidence:.1%} confident"
                       + {True: " · sure", False: " · unsure", None: ""}[r.sure], r.text)
        chars = {FORM_NAMES[form]: [f"{c.char}  {c.confidence:.0%}" for c in r.chars]
                 for form, r in pred.readings().items()}
        width = max((len(row) for row in chars.values()), default=0)  # the forms may read different lengths:
        table = pd.DataFrame.from_dict({k: v + [""] * (width - len(v)) for k, v in chars.items()},  # blanks end
                                       orient="index")                                         # the shorter row
        st.table(table.rename(columns=lambda i: f"#{i + 1}"))
        st.caption(f"both forms in {pred.elapsed_ms:.0f} ms")
    if attention:
        st.image(attention_panels(image, pred.sequential), caption="Where the sequential form looked")


st.set_page_config(page_title="CAPTCHA reader", page_icon="🔤", layout="wide")
st.title("CAPTCHA reader")
st.caption("Two readings of every image: **one-go** reads all characters at once, "
           "**sequential** one position at a time, looking at a different part of the image each time.")
rec, attention, min_confidence = sidebar()
items = inputs() if rec else []
if rec and not items:
    st.info("Upload one or several CAPTCHAs, or pick samples above.")

try:
    rows = batch.read_rows(rec, items, min_confidence=min_confidence) if items else []
except batch.LimitError as e:  # too many images: the whole batch is refused
    st.error(str(e))
    rows = []

if len(rows) > 1:
    table = pd.DataFrame([batch.line(r) for r in rows], columns=batch.COLUMNS)
    st.dataframe(table, hide_index=True, column_config={
        f"{form}_confidence": st.column_config.NumberColumn(format="percent") for form in [*FORM_NAMES, "answer"]})
    st.download_button("Download CSV", batch.csv_text(rows), file_name="captcha-readings.csv", mime="text/csv")
for r in rows:
    if r.error:
        st.error(r.error)
    else:
        show(r.file, r.image, r.prediction, attention)
