"""app.py for real: one uvicorn process per module on a free loopback port, spoken to over HTTP
(REST, the seed's route, bad inputs, gradio_client). Expected readings come from an in-process
Recognizer on the same weights, so a server that answered anything else would fail."""
from __future__ import annotations

import contextlib
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from conftest import ROOT, TINY_SPEC, subprocess_env, zip_of
from captcha import onnx_trunk
from captcha.recognizer import Recognizer, bf16_is_fast

MAX_UPLOAD_MB = 1
MAX_BATCH = 5
LIMIT = MAX_UPLOAD_MB << 20


@contextlib.contextmanager
def serve(weights: Path, *flags: str, timeout: float = 120):
    """Run `python app.py` on a free loopback port until the block ends; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(Path(weights).parent / f"app-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port), "--threads", "1",
                             *flags], cwd=ROOT, env=subprocess_env(CAPTCHA_WEIGHTS=str(weights)),
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError(f"app.py exited with {proc.returncode}:\n{log.read()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"app.py did not answer /api/health within {timeout} s")
            time.sleep(0.3)
        yield url
    finally:
        # uvicorn: a first Ctrl+C waits for open connections (gradio_client's heartbeat stream stays
        # open even after Client.close()), a second stops waiting.
        for wait in (1, 10):
            proc.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)
                break
        else:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="module")
def server(tiny_weights):
    # weights through CAPTCHA_WEIGHTS (no --weights flag), so the variable is tested too
    with serve(tiny_weights, "--max-upload-mb", str(MAX_UPLOAD_MB), "--max-batch", str(MAX_BATCH)) as url:
        yield url


@pytest.fixture(scope="module")
def recognizer(tiny_weights):
    return Recognizer.from_pretrained(tiny_weights)


def texts(prediction: dict) -> tuple[str, str]:
    return prediction["one_go"]["text"], prediction["sequential"]["text"]


def assert_still_serving(url: str, sample: Path, recognizer: Recognizer):
    r = httpx.post(f"{url}/api/predict", files={"file": (sample.name, sample.read_bytes())}, timeout=30)
    assert r.status_code == 200, r.text
    assert texts(r.json()) == texts(recognizer.predict(sample).to_dict())


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width=30000, height=30000) -> bytes:
    """A valid ~100-byte PNG claiming width x height (1-bit grey): decoding it in full would need ~110 MB."""
    row = zlib.compress(b"\x00" * (1 + (width + 7) // 8), 9)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + png_chunk(b"IDAT", row) + png_chunk(b"IEND", b""))


def multipart(field: str, name: str, data: bytes, boundary="captcha-test-boundary") -> tuple[bytes, dict]:
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    return body, {"content-type": f"multipart/form-data; boundary={boundary}"}


# --- the routes -------------------------------------------------------------------------------

def test_health_reports_the_loaded_models(server):
    r = httpx.get(f"{server}/api/health")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ok"
    assert set(body["models"]) == {"one_go", "sequential"}
    bf16 = bf16_is_fast()  # what auto picks on this CPU: bf16 in PyTorch, else fp32 in ONNX Runtime
    assert body["runtime"] == {"engine": "torch" if bf16 or not onnx_trunk.available() else "onnx",
                               "precision": "bf16" if bf16 else "fp32"}
    for form in body["models"].values():
        assert form["arch"] == "resnet18"
        assert form["spec"] == {"alphabet": TINY_SPEC.alphabet, "length": TINY_SPEC.length,
                                "height": TINY_SPEC.height, "width": TINY_SPEC.width,
                                "crop": list(TINY_SPEC.crop)}
    assert body["limits"] == {"max_upload_mb": MAX_UPLOAD_MB, "max_batch": MAX_BATCH}


def test_predict_returns_both_readings(server, sample_images, recognizer):
    sample = sample_images[0]
    r = httpx.post(f"{server}/api/predict", files={"file": (sample.name, sample.read_bytes(), "image/png")}, timeout=30)
    assert r.status_code == 200, r.text
    body, expected = r.json(), recognizer.predict(sample).to_dict()
    assert set(body) == {"answer", "one_go", "sequential", "elapsed_ms"}
    assert body["answer"] == expected["answer"] | {"confidence": pytest.approx(expected["answer"]["confidence"],
                                                                              rel=1e-3, abs=1e-6)}
    assert body["answer"]["sure"] is None  # these weights carry no calibration
    for form in ("one_go", "sequential"):
        assert body[form]["text"] == expected[form]["text"]
        assert body[form]["confidence"] == pytest.approx(expected[form]["confidence"], rel=1e-3, abs=1e-6)
        assert [c["char"] for c in body[form]["chars"]] == list(expected[form]["text"])
        assert all(0 < c["confidence"] <= 1 for c in body[form]["chars"])
    assert body["elapsed_ms"] > 0


def test_seed_route_keeps_its_shape(server, sample_images, recognizer):
    sample = sample_images[1]
    r = httpx.post(f"{server}/predict/", files={"image": (sample.name, sample.read_bytes(), "image/png")}, timeout=30)
    assert r.status_code == 200, r.text
    one_go, sequential = texts(recognizer.predict(sample).to_dict())
    assert r.json() == {"sequential_prediction": sequential, "whole_prediction": one_go}


def test_batch_reads_files_and_zips_and_reports_bad_ones(server, sample_images, recognizer):
    a, b, c = sample_images[:3]
    archive = zip_of({f"inner/{b.name}": b.read_bytes(), "big.png": bytes(LIMIT + 100),  # compresses to ~1 KB
                      "notes.txt": b"skipped: not an image name", "__MACOSX/._x.png": b"junk"})
    files = [("files", (a.name, a.read_bytes(), "image/png")), ("files", ("shots.zip", archive, "application/zip")),
             ("files", ("notes.png", b"plain text", "image/png")), ("files", (c.name, c.read_bytes(), "image/png"))]
    r = httpx.post(f"{server}/api/predict/batch", files=files, timeout=60)
    assert r.status_code == 200, r.text
    rows = r.json()["results"]
    assert [row["file"] for row in rows] == [a.name, f"shots.zip/inner/{b.name}", "shots.zip/big.png", "notes.png", c.name]
    expected = recognizer.predict_batch([a, b, c])
    for row, want in zip([rows[0], rows[1], rows[4]], expected):
        assert "error" not in row
        assert texts(row) == (want.one_go.text, want.sequential.text)
    assert "over the 1 MB limit" in rows[2]["error"]
    assert "not an image" in rows[3]["error"] and "one_go" not in rows[3]


def test_concurrent_requests_all_read_correctly(server, sample_images, recognizer):
    samples = sample_images[:6]

    def post(p):
        return httpx.post(f"{server}/api/predict", files={"file": (p.name, p.read_bytes())}, timeout=60)

    with ThreadPoolExecutor(6) as pool:
        responses = list(pool.map(post, samples))
    for p, r in zip(samples, responses):
        assert r.status_code == 200, r.text
        assert texts(r.json()) == texts(recognizer.predict(p).to_dict())


def test_images_waiting_together_are_read_together_as_they_would_be_alone(recognizer, sample_images):
    import threading
    import app
    service = app.Service(recognizer, max_upload_mb=MAX_UPLOAD_MB, max_batch=MAX_BATCH)
    gate = threading.Event()
    busy = service.submit(gate.wait)  # the inference thread is busy: the reads below queue up
    samples = sample_images[:4]
    futures = [service.submit(app.READ, p.name, p.read_bytes(), None) for p in samples]
    bad = service.submit(app.READ, "bad.png", b"not an image", None)
    strict = service.submit(app.READ, samples[0].name, samples[0].read_bytes(), 1.0)
    gate.set()
    busy.result(timeout=30)
    with pytest.raises(Exception, match="not an image"):
        bad.result(timeout=60)  # a bad image fails its own request only
    for p, future in zip(samples, futures):
        _, together = future.result(timeout=60)
        alone = recognizer.predict(p)
        for form in ("one_go", "sequential"):
            a, b = getattr(together, form), getattr(alone, form)
            assert a.text == b.text and a.confidence == pytest.approx(b.confidence, rel=1e-4, abs=1e-7)
        assert together.answer.text == alone.answer.text
    assert strict.result(timeout=60)[1].answer.sure is False  # its own threshold, though read with the others
    # one batch of the four good images (the bad one took the fifth place of max_batch), then the last alone
    assert service.batch_sizes == [len(samples), 1]


def test_openapi_lists_the_routes(server):
    assert httpx.get(f"{server}/docs").status_code == 200
    paths = httpx.get(f"{server}/openapi.json").json()["paths"]
    assert {"/api/health", "/api/predict", "/api/predict/batch", "/predict/"} <= set(paths)


def test_no_cors_for_foreign_origins(server):
    for method, path in (("GET", "/api/health"), ("OPTIONS", "/api/predict"), ("GET", "/config")):
        r = httpx.request(method, f"{server}{path}", headers={"Origin": "https://evil.example",
                                                               "Access-Control-Request-Method": "POST"})
        assert "access-control-allow-origin" not in r.headers, f"{method} {path}: {dict(r.headers)}"


def test_cors_origins_flag_allows_only_those_origins_without_credentials(tiny_weights):
    import app
    from fastapi.testclient import TestClient
    web = app.create_app(Recognizer.from_pretrained(tiny_weights), cors_origins=["https://ok.example"], examples=[])
    with TestClient(web) as client:
        ok = client.get("/api/health", headers={"Origin": "https://ok.example"})
        assert ok.headers.get("access-control-allow-origin") == "https://ok.example"
        assert "access-control-allow-credentials" not in ok.headers
        assert "access-control-allow-origin" not in client.get("/api/health", headers={"Origin": "https://evil.example"}).headers


# --- bad input: a 4xx with a JSON detail, and the server keeps serving -------------------------

BAD_UPLOADS = {
    "not an image": (b"%PDF-1.4 certainly not a png", 422, "not an image"),
    "truncated": (None, 422, "truncated"),
    "empty": (b"", 422, "empty"),
    "absurd dimensions": (huge_png(), 422, "too large"),
    "over the size limit": (bytes(LIMIT + 200_000), 413, "too large"),
    "just over the size limit": (bytes(LIMIT + 1), 413, "over the 1 MB limit"),
}


@pytest.mark.parametrize("case", list(BAD_UPLOADS))
@pytest.mark.parametrize("route,field", [("/api/predict", "file"), ("/predict/", "image")])
def test_bad_upload_is_refused_and_server_keeps_serving(server, sample_images, recognizer, case, route, field):
    data, status, words = BAD_UPLOADS[case]
    if data is None:
        whole = sample_images[0].read_bytes()
        data = whole[: len(whole) // 2]
    r = httpx.post(f"{server}{route}", files={field: ("upload.png", data, "image/png")}, timeout=30)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    assert_still_serving(server, sample_images[2], recognizer)


def test_oversized_body_without_content_length_is_refused(server, sample_images, recognizer):
    body, headers = multipart("file", "big.png", bytes(3 * LIMIT))
    chunks = (body[i:i + 65536] for i in range(0, len(body), 65536))  # a generator: sent chunked, no Content-Length
    r = httpx.post(f"{server}/api/predict", content=chunks, headers=headers, timeout=30)
    assert r.request.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert "too large" in r.json()["detail"]
    assert_still_serving(server, sample_images[3], recognizer)


def test_missing_field_is_a_422(server, sample_images, recognizer):
    r = httpx.post(f"{server}/api/predict", files={"image": ("a.png", sample_images[0].read_bytes())})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "file"]
    assert_still_serving(server, sample_images[0], recognizer)


@pytest.mark.parametrize("how", ["files", "zip"])
def test_batch_over_the_count_limit_is_refused(server, sample_images, recognizer, how):
    samples = sample_images[: MAX_BATCH + 1]
    if how == "files":
        files = [("files", (p.name, p.read_bytes(), "image/png")) for p in samples]
    else:
        files = [("files", ("many.zip", zip_of({p.name: p.read_bytes() for p in samples}), "application/zip"))]
    r = httpx.post(f"{server}/api/predict/batch", files=files, timeout=30)
    assert r.status_code == 413, r.text
    assert f"the limit is {MAX_BATCH}" in r.json()["detail"]
    assert_still_serving(server, sample_images[4], recognizer)


# --- Gradio's own API --------------------------------------------------------------------------

def test_gradio_client_predict(server, sample_images, recognizer, request):
    from gradio_client import Client, handle_file
    client = Client(server, verbose=False)
    request.addfinalizer(client.close)  # its heartbeat stream would hold the server's shutdown
    assert {"/predict", "/predict_batch"} <= set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    sample = sample_images[5]
    result = client.predict(handle_file(str(sample)), api_name="/predict")
    assert texts(result) == texts(recognizer.predict(sample).to_dict())
    assert len(result["sequential"]["chars"]) == TINY_SPEC.length


def test_gradio_client_batch_gives_table_and_csv(server, sample_images, recognizer, request):
    from gradio_client import Client, handle_file
    samples = sample_images[:2]
    client = Client(server, verbose=False)
    request.addfinalizer(client.close)
    table, csv_path = client.predict([handle_file(str(p)) for p in samples], api_name="/predict_batch")
    assert table["headers"][:8] == ["file", "answer", "answer_confidence", "sure",
                                    "one_go", "one_go_confidence", "sequential", "sequential_confidence"]
    expected = recognizer.predict_batch(samples)
    assert [(row[0], row[1], row[4], row[6]) for row in table["data"]] == [
        (p.name, e.answer.text, e.one_go.text, e.sequential.text) for p, e in zip(samples, expected)]
    lines = Path(csv_path).read_text().splitlines()
    assert lines[0].startswith("file,answer,answer_confidence,sure,one_go,") and len(lines) == 1 + len(samples)
    assert lines[1].startswith(f"{samples[0].name},{expected[0].answer.text},")


# --- the answer and sure, with calibrated weights ----------------------------------------------

@pytest.fixture(scope="module")
def calibrated_server(calibrated_weights):
    with serve(calibrated_weights) as url:
        yield url


def test_answers_carry_the_stored_threshold_and_sure(calibrated_server, calibrated_weights, sample_images):
    rec = Recognizer.from_pretrained(calibrated_weights)
    health = httpx.get(f"{calibrated_server}/api/health").json()
    assert health["sure_threshold"]["answer"] == pytest.approx(rec.threshold())
    assert health["models"]["one_go"]["calibration"]["temperature"] == 0.25
    files = [("files", (p.name, p.read_bytes(), "image/png")) for p in sample_images]
    rows = httpx.post(f"{calibrated_server}/api/predict/batch", files=files, timeout=60).json()["results"]
    expected = rec.predict_batch(sample_images)
    assert [row["answer"]["sure"] for row in rows] == [e.answer.sure for e in expected]
    assert {row["answer"]["sure"] for row in rows} == {True, False}  # the threshold splits the samples
    for row, e in zip(rows, expected):
        assert row["answer"]["text"] == e.answer.text and row["answer"]["reason"] == e.answer.reason()
        assert row["one_go"]["sure"] == e.one_go.sure and row["sequential"]["sure"] == e.sequential.sure
        if not e.answer.sure:
            assert row["answer"]["doubtful"] and "below the" in row["answer"]["reason"]


@pytest.mark.parametrize("level, sure", [(0, True), (1, False)])
def test_min_confidence_per_request(calibrated_server, sample_images, level, sure):
    sample = sample_images[0]
    files = {"file": (sample.name, sample.read_bytes(), "image/png")}
    body = httpx.post(f"{calibrated_server}/api/predict", params={"min_confidence": level}, files=files, timeout=30).json()
    assert body["answer"]["sure"] is sure and body["answer"]["threshold"] == level
    assert body["one_go"]["sure"] is sure and body["sequential"]["sure"] is sure


def test_min_confidence_out_of_range_is_a_422(calibrated_server, sample_images):
    sample = sample_images[0]
    r = httpx.post(f"{calibrated_server}/api/predict", params={"min_confidence": 1.5},
                   files={"file": (sample.name, sample.read_bytes(), "image/png")}, timeout=30)
    assert r.status_code == 422 and "min_confidence" in r.text


def test_gradio_client_answer_is_sure_or_not(calibrated_server, calibrated_weights, sample_images, request):
    from gradio_client import Client, handle_file
    client = Client(calibrated_server, verbose=False)
    request.addfinalizer(client.close)
    rec = Recognizer.from_pretrained(calibrated_weights)
    for sample in sample_images[:4]:
        result = client.predict(handle_file(str(sample)), api_name="/predict")
        assert result["answer"]["sure"] == rec.predict(sample).answer.sure


# --- start-up ----------------------------------------------------------------------------------

def test_cli_port_from_environment_and_flags(monkeypatch):
    import app
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.delenv("CAPTCHA_WEIGHTS", raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, Path(args.weights)) == ("0.0.0.0", 8123, ROOT / "weights")
    assert app.parse_args(["--port", "9000"]).port == 9000
    monkeypatch.delenv("PORT")
    assert app.parse_args([]).port == 7860


def test_missing_weights_stop_start_up_with_a_clear_message(tmp_path):
    import app
    with pytest.raises(SystemExit) as stop:
        app.main(["--weights", str(tmp_path), "--threads", "1"])
    assert "holds no weights" in str(stop.value.code)
