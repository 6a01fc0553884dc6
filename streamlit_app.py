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

from captcha.errors import CaptchaError
from captcha.images import IMAGE_EXTENSIONS, open_image
from captcha.overlay import attention_panels
from captcha.recognizer import Recognizer

HERE = Path(__file__).resolve().parent
SAMPLES = sorted(p for p in (HERE / "data").glob("*") if p.suffix.lower() in IMAGE_EXTENSIONS)
FORM_NAMES = {"one_go": "One-go", "sequential": "Sequential"}


@st.cache_resource(show_spinner="Loading weights...")
def load(weights: str) -> Recognizer:
    """One Recognizer per weights path for the whole server: loading takes seconds, reading milliseconds."""
    return Recognizer.from_pretrained(weights)


def sidebar() -> tuple[Recognizer | None, bool]:
    st.sidebar.header("Model")
    weights = st.sidebar.text_input(
        "Weights", os.environ.get("CAPTCHA_WEIGHTS", str(HERE / "weights")),
        help="A weights folder, a .safetensors file, or a Hugging Face Hub model repo id (user/name).")
    try:
        rec = load(weights.strip())
    except CaptchaError as e:
        st.error(f"Cannot load the weights: {e}")
        return None, False
    for form, info in rec.describe().items():
        spec = info["spec"]
        st.sidebar.markdown(f"**{FORM_NAMES[form]}**: {info['arch']}, {spec['length']} characters of "
                            f"{len(spec['alphabet'])}, input {spec['height']}x{spec['width']} (HxW)")
    attention = "sequential" in rec.models and st.sidebar.checkbox(
        "Show where the sequential form looked", key="attention",
        help="One panel per character position, where it looked in red.")
    return rec, attention


def inputs() -> list[tuple[str, object]]:
    """(name, source) for every upload and every chosen sample; sources are bytes or paths."""
    uploads = st.file_uploader("Upload CAPTCHAs", type=[e.lstrip(".") for e in IMAGE_EXTENSIONS],
                               accept_multiple_files=True, max_upload_size=10)  # MB; a CAPTCHA is a few kB
    chosen = st.multiselect("...or try samples from data/ (the file name is the answer)",
                            [p.name for p in SAMPLES], key="samples", placeholder="Pick sample images")
    return [(f.name, f.getvalue()) for f in uploads or []] + [(name, HERE / "data" / name) for name in chosen]


def show(name: str, image, pred, attention: bool) -> None:
    """One image: the picture, both readings with confidences, per-character confidences, the time."""
    st.subheader(name, divider="gray")
    left, right = st.columns([1, 3], vertical_alignment="center")
    left.image(image, width=160)
    with right:
        for col, (form, r) in zip(st.columns(2), pred.readings().items()):
            col.metric(f"{FORM_NAMES[form]} · {r.confidence:.1%} sure", r.text)
        chars = {FORM_NAMES[form]: [f"{c.char}  {c.confidence:.0%}" for c in r.chars]
                 for form, r in pred.readings().items()}
        st.table(pd.DataFrame(chars).T.rename(columns=lambda i: f"#{i + 1}"))
        st.caption(f"both forms in {pred.elapsed_ms:.0f} ms")
    if attention:
        st.image(attention_panels(image, pred.sequential), caption="Where the sequential form looked")


def row(name: str, pred=None, error: str = "") -> dict:
    out = {"file": name}
    for form in FORM_NAMES:
        r = pred and getattr(pred, form)
        out[form] = r.text if r else ""
        out[f"{form}_confidence"] = round(r.confidence, 6) if r else None
    return {**out, "elapsed_ms": round(pred.elapsed_ms, 1) if pred else None, "error": error}


st.set_page_config(page_title="CAPTCHA reader", page_icon="🔤", layout="wide")
st.title("CAPTCHA reader")
st.caption("Two readings of every image: **one-go** reads all characters at once, "
           "**sequential** one position at a time, looking at a different part of the image each time.")
rec, attention = sidebar()
items = inputs() if rec else []
if rec and not items:
    st.info("Upload one or several CAPTCHAs, or pick samples above.")

opened = []  # (name, image or None, error), in the order given
for name, source in items:
    try:
        opened.append((name, open_image(source, name=name), ""))
    except CaptchaError as e:  # a bad file costs its own reading, not the others'
        opened.append((name, None, str(e)))
good = [image for _, image, _ in opened if image is not None]
predictions = iter(rec.predict_batch(good) if good else [])
results = [(name, image, next(predictions) if image is not None else None, error) for name, image, error in opened]

if len(results) > 1:
    table = pd.DataFrame([row(name, pred, error) for name, _, pred, error in results])
    st.dataframe(table, hide_index=True, column_config={
        f"{form}_confidence": st.column_config.NumberColumn(format="percent") for form in FORM_NAMES})
    st.download_button("Download CSV", table.to_csv(index=False), file_name="captcha-readings.csv", mime="text/csv")
for name, image, pred, error in results:
    if error:
        st.error(error)
    else:
        show(name, image, pred, attention)
