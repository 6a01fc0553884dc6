"""streamlit_app.py, driven by Streamlit's AppTest in this process, and once for real with `streamlit run`."""
from __future__ import annotations

import io
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from captcha import batch
from captcha.recognizer import Recognizer
from conftest import ROOT, subprocess_env

SAMPLES = ["9oFyb.png", "RShIm.png"]


@pytest.fixture
def app(tiny_weights, monkeypatch) -> AppTest:
    monkeypatch.setenv("CAPTCHA_WEIGHTS", str(tiny_weights))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60)
    return at.run()


@pytest.fixture(scope="module")
def expected(tiny_weights) -> dict:
    """What the package itself reads, per sample: the page must show exactly this."""
    rec = Recognizer.from_pretrained(tiny_weights)
    return {name: rec.predict(ROOT / "data" / name) for name in SAMPLES}


def metrics(at: AppTest) -> dict[str, str]:
    """{'One-go': text, 'Sequential': text} for the first image shown (labels carry the confidence)."""
    return {m.label.split(" · ")[0]: m.value for m in at.metric[:2]}


def test_starts_with_the_weights_described_and_nothing_read(app):
    assert not app.exception and not app.error
    assert "resnet18, 4 characters of 16" in " ".join(m.value for m in app.sidebar.markdown)
    assert app.info and not app.metric


def test_upload_shows_both_readings_with_confidences(app, expected):
    name = SAMPLES[0]
    app.file_uploader[0].set_value((name, (ROOT / "data" / name).read_bytes(), "image/png")).run()
    assert not app.exception and not app.error
    pred = expected[name]
    assert metrics(app) == {"One-go": pred.one_go.text, "Sequential": pred.sequential.text}
    assert f"{pred.sequential.confidence:.1%} confident" in app.metric[1].label
    assert app.info[0].value.startswith(f"**Answer: `{pred.answer.text}`**")  # uncalibrated: neither sure nor not
    assert "no calibration" in app.info[0].value
    table = app.table[0].value  # per-character confidences, one row per form
    assert list(table.index) == ["One-go", "Sequential"] and list(table.columns) == ["#1", "#2", "#3", "#4"]
    first = pred.one_go.chars[0]
    assert table.loc["One-go", "#1"] == f"{first.char}  {first.confidence:.0%}"
    assert any(c.value.startswith("both forms in ") and c.value.endswith(" ms") for c in app.caption)


def test_samples_give_a_table_and_a_csv(app, expected):
    app.multiselect(key="samples").set_value(SAMPLES).run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["file"]) == SAMPLES
    assert list(table["sequential"]) == [expected[n].sequential.text for n in SAMPLES]
    assert list(table["one_go"]) == [expected[n].one_go.text for n in SAMPLES]
    assert app.download_button[0].label == "Download CSV"
    assert len(app.metric) == 4


def test_a_bad_file_is_an_error_and_the_others_are_still_read(app, expected):
    good = (SAMPLES[0], (ROOT / "data" / SAMPLES[0]).read_bytes(), "image/png")
    app.file_uploader[0].set_value([("bad.png", b"not an image at all", "image/png"), good]).run()
    assert not app.exception
    assert len(app.error) == 1 and app.error[0].value.startswith("bad.png: not an image")
    assert metrics(app)["Sequential"] == expected[SAMPLES[0]].sequential.text
    table = app.dataframe[0].value
    assert table.loc[0, "file"] == "bad.png" and "not an image" in table.loc[0, "error"]
    assert table.loc[1, "error"] == ""


def test_a_zip_upload_is_read_member_by_member(app, expected):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name in SAMPLES:
            z.write(ROOT / "data" / name, f"shots/{name}")
        z.writestr("shots/readme.txt", "not an image: skipped")
    app.file_uploader[0].set_value(("shots.zip", buf.getvalue(), "application/zip")).run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    assert list(table["file"]) == [f"shots.zip/shots/{name}" for name in SAMPLES]
    assert list(table["sequential"]) == [expected[n].sequential.text for n in SAMPLES]
    assert list(table["one_go"]) == [expected[n].one_go.text for n in SAMPLES]
    assert [h.value for h in app.subheader] == list(table["file"])


def test_too_many_images_refuse_the_batch_with_one_error(app):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for i in range(batch.MAX_BATCH + 1):
            z.write(ROOT / "data" / SAMPLES[0], f"{i}.png")
    app.file_uploader[0].set_value(("many.zip", buf.getvalue(), "application/zip")).run()
    assert not app.exception and not app.metric
    assert len(app.error) == 1 and f"the limit is {batch.MAX_BATCH}" in app.error[0].value


def test_attention_panels_on_request(app):
    app.multiselect(key="samples").set_value(SAMPLES[:1]).run()
    assert "Where the sequential form looked" not in sum((im.captions for im in app.image), [])
    app.checkbox(key="attention").check().run()
    assert not app.exception
    assert "Where the sequential form looked" in sum((im.captions for im in app.image), [])


def test_bad_weights_path_is_an_error_not_a_crash(app, tmp_path):
    app.sidebar.text_input[0].set_value(str(tmp_path / "nope")).run()
    assert not app.exception
    assert "Cannot load the weights" in app.error[0].value and "no such weights folder" in app.error[0].value
    assert not app.file_uploader  # nothing to read with


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_streamlit_run_serves(tiny_weights):
    port = free_port()
    # server.address: bind locally; a headless server on all interfaces also looks up its public IP.
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "streamlit_app.py"), "--server.headless", "true",
           "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
           "--server.fileWatcherType", "none"]
    proc = subprocess.Popen(cmd, env=subprocess_env(CAPTCHA_WEIGHTS=str(tiny_weights)), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline, health = time.time() + 60, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    health = r.read().decode()
                    break
            except OSError:
                time.sleep(0.3)
        assert health == "ok", f"no health: exit {proc.poll()}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
            assert r.status == 200 and b"<html" in r.read().lower()
    finally:
        proc.terminate()
        out = proc.communicate(timeout=15)[0]
    assert "Traceback" not in out, out


@pytest.mark.skipif(not (ROOT / "weights" / "sequential.safetensors").is_file(), reason="no shipped weights yet")
def test_shipped_weights_read_the_samples(monkeypatch):
    """The page as shipped: the default weights, every sample; most must be read right (file name = answer)."""
    monkeypatch.delenv("CAPTCHA_WEIGHTS", raising=False)
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=120).run()
    names = at.multiselect(key="samples").options
    at.multiselect(key="samples").set_value(names).run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    right = [row.file for row in table.itertuples() if Path(row.file).stem in (row.one_go, row.sequential)]
    assert len(right) >= len(names) / 2, f"read right: {right}"


def test_forms_reading_different_lengths_share_one_table(tmp_path, monkeypatch):
    """Weights for 2-4 characters, biased so the one-go form reads 2 and the sequential form 4."""
    import torch
    from captcha.models import build_model
    from captcha.spec import CaptchaSpec
    from captcha.weights import FILENAMES, save_weights

    spec = CaptchaSpec("0123", "2-4", 32, 64)
    torch.manual_seed(0)
    one_go, sequential = build_model("one_go", spec, arch="resnet18"), build_model("sequential", spec, arch="resnet18")
    with torch.no_grad():
        bias = one_go.head[-1].bias.view(4, 5)
        bias[:2, 1] += 50.0           # "11", then END
        bias[2:, 4] += 50.0
        for k, clf in enumerate(sequential.classifiers):
            clf[-1].bias[k] += 50.0   # "0123", no END
    for form, model in (("one_go", one_go), ("sequential", sequential)):
        save_weights(tmp_path / FILENAMES[form], model, form, "resnet18")
    monkeypatch.setenv("CAPTCHA_WEIGHTS", str(tmp_path))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    assert "2-4 characters of 4" in " ".join(m.value for m in at.sidebar.markdown)
    at.file_uploader[0].set_value(("x.png", (ROOT / "data" / SAMPLES[0]).read_bytes(), "image/png")).run()
    assert not at.exception and not at.error
    assert metrics(at) == {"One-go": "11", "Sequential": "0123"}
    table = at.table[0].value
    assert list(table.columns) == ["#1", "#2", "#3", "#4"]
    assert list(table.iloc[0])[2:] == ["", ""] and all(table.iloc[1])


def test_the_answer_comes_first_sure_or_unsure_with_why(calibrated_weights, monkeypatch):
    monkeypatch.setenv("CAPTCHA_WEIGHTS", str(calibrated_weights))
    at = AppTest.from_file(str(ROOT / "streamlit_app.py"), default_timeout=60).run()
    rec = Recognizer.from_pretrained(calibrated_weights)
    names = [p.name for p in sorted((ROOT / "data").glob("*.png"))][:6]
    answers = [rec.predict(ROOT / "data" / n).answer for n in names]
    assert {a.sure for a in answers} == {True, False}, "the fixture's threshold should split these samples"
    assert at.sidebar.slider[0].value == pytest.approx(rec.threshold())
    at.multiselect[0].set_value(names).run()
    assert not at.exception and not at.error
    assert [s.value.split("`")[1] for s in at.success] == [a.text for a in answers if a.sure]
    assert [w.value.split("`")[1] for w in at.warning] == [a.text for a in answers if not a.sure]
    for w, a in zip(at.warning, [a for a in answers if not a.sure]):
        assert "**unsure**" in w.value and "doubtful:" in w.value and f"{a.doubtful[0]['char']!r}" in w.value
    table = at.dataframe[0].value
    assert list(table["sure"]) == [a.sure for a in answers]
    at.sidebar.slider[0].set_value(1.0).run()  # a stricter threshold: nothing is sure
    assert not at.success and len(at.warning) == len(names)
