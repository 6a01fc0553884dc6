"""One process, three doors to the same Recognizer: the Gradio UI at /, a REST API under /api
(docs at /docs), and the seed's POST /predict/, kept for its users.

    python app.py                                   # http://localhost:7860, weights from weights/
    python app.py --weights runs/x --port 8000 --max-upload-mb 5 --max-batch 64 --threads 2
    python app.py --min-confidence 0.95   # the confidence an answer needs to be "sure" (default: the weights')

Models load once at start-up. All inference runs on one worker thread: the event loop (health
checks, the UI's own traffic) never waits on torch, and requests never fight over the cores;
single images that arrive together are read together (Service).
Presentation only: what the pages and JSON show comes from `Prediction`.
"""
from __future__ import annotations

import argparse
import asyncio
import html
import os
import queue
import sys
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from captcha import batch
from captcha.errors import CaptchaError
from captcha.images import IMAGE_EXTENSIONS
from captcha.overlay import attention_panels
from captcha.recognizer import Answer, Reading, Recognizer, percent, set_threads

ROOT = Path(__file__).resolve().parent
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file bytes
READ = object()  # a queued job that reads one image (Service): such jobs waiting together are read together


class BodyLimit:
    """Refuse request bodies over a per-path limit with a JSON 413. A declared Content-Length is
    checked first, and the bytes are counted as they arrive, so chunked or lying requests stop too."""

    def __init__(self, app, limits: dict[str, int], detail: str):
        self.app, self.limits, self.detail = app, limits, detail

    async def __call__(self, scope, receive, send):
        limit = self.limits.get(scope["path"]) if scope["type"] == "http" else None
        if limit is None:
            return await self.app(scope, receive, send)
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return await JSONResponse({"detail": self.detail}, 413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > limit:  # FastAPI re-raises an HTTPException from the body parser as it is
                raise HTTPException(413, self.detail)
            return message

        await self.app(scope, counted, send)


class Service:
    """The recognizer, the limits every door applies (captcha.batch), and the one thread inference runs on.

    Work reaches that thread through one queue. Single images waiting there together are read
    together, in one predict_batch call (micro-batching): on a CPU a batch costs far less than its
    images one by one, so concurrent clients are served faster, and each gets the reading it would
    have got alone (readings do not depend on what else is in the batch; only elapsed_ms does).
    """

    def __init__(self, recognizer: Recognizer, max_upload_mb: float = batch.MAX_UPLOAD_MB,
                 max_batch: int = batch.MAX_BATCH):
        self.recognizer = recognizer
        self.limits = batch.Limits(max_upload_mb, max_batch)
        self.queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batch_sizes: list[int] = []  # how many single images each read took together (the last 1000)
        threading.Thread(target=self._work, name="inference", daemon=True).start()

    async def run(self, fn, *args):
        """From async code: run fn on the inference thread without blocking the event loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def call(self, fn, *args):
        """From Gradio's worker threads: the same queue, waited on."""
        return self.submit(fn, *args).result()

    def submit(self, fn, *args) -> Future:
        future: Future = Future()
        self.queue.put((fn, args, future))
        return future

    async def read(self, name: str, source, min_confidence: float | None = None):
        """(image, Prediction) of one upload, read together with any others waiting."""
        return await asyncio.wrap_future(self.submit(READ, name, source, min_confidence))

    def read_now(self, name: str, source, min_confidence: float | None = None):
        """The same, from a worker thread (Gradio's), waited on."""
        return self.submit(READ, name, source, min_confidence).result()

    def read_rows(self, inputs, min_confidence: float | None = None) -> list[batch.Row]:
        return batch.read_rows(self.recognizer, inputs, self.limits, min_confidence)

    def _work(self) -> None:
        while True:
            jobs = [self.queue.get()]
            if jobs[0][0] == READ:  # take every single image already waiting, up to the batch limit
                while len(jobs) < self.limits.max_batch:
                    try:
                        job = self.queue.get_nowait()
                    except queue.Empty:
                        break
                    if job[0] != READ:
                        self._run(self._read_together, jobs)
                        jobs = [job]
                        break
                    jobs.append(job)
            if jobs[0][0] == READ:
                self._run(self._read_together, jobs)
            else:
                self._run_one(*jobs[0])

    @staticmethod
    def _run_one(fn, args, future: Future) -> None:
        if future.set_running_or_notify_cancel():
            try:
                future.set_result(fn(*args))
            except BaseException as e:  # the caller gets the error; the thread goes on
                future.set_exception(e)

    def _run(self, fn, jobs) -> None:
        try:
            fn(jobs)
        except BaseException as e:
            for _, _, future in jobs:
                if not future.done():
                    future.set_exception(e)

    def _read_together(self, jobs) -> None:
        """Decode each job's image (a bad one fails only its own job), then read them all in one
        predict_batch call per minimum confidence asked for."""
        ready = []
        for job in jobs:
            _, (name, source, level), future = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                ready.append((batch.open_one(name, source, self.limits), level, future))
            except BaseException as e:
                future.set_exception(e)
        self.batch_sizes = (self.batch_sizes + [len(ready)])[-1000:]
        for level in {level for _, level, _ in ready}:
            group = [(image, future) for image, lvl, future in ready if lvl == level]
            predictions = self.recognizer.predict_batch([image for image, _ in group], min_confidence=level)
            for (image, future), prediction in zip(group, predictions):
                future.set_result((image, prediction))


# --- REST ------------------------------------------------------------------------------------

def build_api(service: Service, cors_origins=()) -> FastAPI:
    app = FastAPI(title="CAPTCHA reader", version="1", description="Read text CAPTCHAs with two models: "
                  "one-go (all characters at once) and sequential (one position at a time). The UI is at /.")
    limits = service.limits
    one_file = limits.max_upload_bytes + MULTIPART_SLACK
    app.add_middleware(BodyLimit, limits={"/api/predict": one_file, "/predict/": one_file,
                                          "/api/predict/batch": limits.max_batch * one_file},
                       detail=f"the request is too large: at most {limits.max_upload_mb:g} MB per file "
                              f"and {limits.max_batch} files per batch")
    if cors_origins:  # off by default, never with credentials; added last so it wraps the 413s too
        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["*"])

    @app.exception_handler(CaptchaError)
    async def captcha_error(request: Request, e: CaptchaError):
        return JSONResponse({"detail": str(e)}, status_code=getattr(e, "status", 422))

    @app.get("/api/health")
    async def health() -> dict:
        """Up, and with which models (arch, spec, training summary) and limits."""
        rec = service.recognizer
        return {"status": "ok", "models": rec.describe(),
                "runtime": {"engine": rec.engine, "precision": rec.precision,
                            **({"engine_ms": rec.engine_ms} if rec.engine_ms else {})},  # auto's race, if run
                "sure_threshold": {"answer": rec.threshold(), **{form: rec.threshold(form) for form in rec.models}},
                "read_together": {"reads": len(service.batch_sizes),  # the last 1000 micro-batches
                                  "mean_images": round(sum(service.batch_sizes) / max(len(service.batch_sizes), 1), 2)},
                "limits": {"max_upload_mb": limits.max_upload_mb, "max_batch": limits.max_batch}}

    sure_above = Query(None, ge=0, le=1, description="the confidence an answer needs to be sure "
                                                      "(default: the threshold stored with the weights)")

    @app.post("/api/predict")
    async def predict(file: UploadFile = File(..., description="a CAPTCHA image"),
                      min_confidence: float | None = sure_above) -> dict:
        """The answer to submit (calibrated confidence, `sure`, and why not), and both readings of one
        image with per-character confidences."""
        _, prediction = await service.read(file.filename or "upload", await file.read(), min_confidence)
        return prediction.to_dict()

    @app.post("/api/predict/batch")
    async def predict_batch(files: list[UploadFile] = File(..., description="images and/or zips of images"),
                            min_confidence: float | None = sure_above) -> dict:
        """Many images (zips are opened): one result per image, in order; an unreadable image gets an
        `error` instead of readings and does not fail the others."""
        uploads = [(f.filename or "upload", await f.read()) for f in files]
        return {"results": [row.to_dict() for row in await service.run(service.read_rows, uploads, min_confidence)]}

    @app.post("/predict/", summary="The seed's API (kept for its users)")
    async def seed_predict(image: UploadFile = File(...)) -> dict:
        """The seed backend's route and answer shape: field `image`, the two texts only."""
        _, p = await service.read(image.filename or "upload", await image.read())
        return {"sequential_prediction": p.sequential.text if p.sequential else None,
                "whole_prediction": p.one_go.text if p.one_go else None}

    return app


# --- Gradio UI -------------------------------------------------------------------------------

CSS = """
.reading {border: 1px solid var(--border-color-primary); border-radius: 10px; padding: 14px 18px;
          background: var(--block-background-fill); min-height: 150px}
.reading h3 {margin: 0 0 2px; font-size: .8rem; text-transform: uppercase; letter-spacing: .08em;
             color: var(--body-text-color-subdued)}
.reading .text {font-family: var(--font-mono); font-size: 2.4rem; font-weight: 600; letter-spacing: .12em}
.reading .confidence {color: var(--body-text-color-subdued); margin-bottom: 10px}
.reading .chars {display: flex; gap: 6px; flex-wrap: wrap}
.reading .char {display: flex; flex-direction: column; align-items: center; min-width: 2.6em; padding: 4px 6px;
                border-radius: 6px; color: #111; background: hsl(var(--hue) 65% 85%)}
.reading .char b {font-family: var(--font-mono); font-size: 1.25rem}
.reading .char small {font-size: .75rem}
.reading .empty {color: var(--body-text-color-subdued); padding-top: 24px}
.answer {border: 2px solid #2e9d4a; border-radius: 10px; padding: 12px 18px; margin-bottom: 10px;
         background: var(--block-background-fill)}
.answer.unsure {border-color: #d9822b; background: repeating-linear-gradient(135deg, transparent 0 12px,
                rgba(217, 130, 43, .08) 12px 24px)}
.answer.uncalibrated {border-color: var(--border-color-primary)}
.answer h3 {margin: 0; font-size: .8rem; text-transform: uppercase; letter-spacing: .08em}
.answer .badge {display: inline-block; margin-left: 8px; padding: 1px 8px; border-radius: 9px; color: white;
                background: #2e9d4a; font-size: .75rem}
.answer.unsure .badge {background: #d9822b}
.answer.uncalibrated .badge {background: #888}
.answer .text {font-family: var(--font-mono); font-size: 2.8rem; font-weight: 700; letter-spacing: .14em}
.answer .doubt {color: #c0392b; text-decoration: underline wavy #d9822b}
.answer .why {color: var(--body-text-color-subdued)}
"""


def answer_card(answer: Answer | None) -> str:
    """The string to submit first: green when sure; when not, striped orange with its doubtful
    characters marked and the reason; grey when the weights carry no calibration."""
    if answer is None:
        return '<div class="answer uncalibrated"><h3>answer</h3><div class="why">upload an image to read it</div></div>'
    state = "uncalibrated" if answer.sure is None else "sure" if answer.sure else "unsure"
    badge = {"sure": "sure: submit it", "unsure": "unsure: ask for a new CAPTCHA", "uncalibrated": "not calibrated"}
    doubtful = {d["position"] for d in answer.doubtful}
    text = "".join(f'<span class="doubt">{html.escape(c)}</span>' if i in doubtful else html.escape(c)
                   for i, c in enumerate(answer.text)) or "&nbsp;"
    return (f'<div class="answer {state}"><h3>answer<span class="badge">{badge[state]}</span></h3>'
            f'<div class="text">{text}</div><div class="why">{html.escape(answer.reason())} '
            f'(from the {answer.form.replace("_", "-")} model)</div></div>')


def card(form: str, title: str, reading: Reading | None, note: str = "upload an image to read it") -> str:
    """One form's reading as HTML: the text, its confidence, and each character tinted red..green by its own."""
    if reading is None:
        return f'<div class="reading {form}"><h3>{title}</h3><div class="empty">{html.escape(note)}</div></div>'
    chars = "".join(f'<span class="char" style="--hue: {round(120 * c.confidence)}">'
                    f'<b>{html.escape(c.char)}</b><small>{c.confidence:.0%}</small></span>' for c in reading.chars)
    return (f'<div class="reading {form}"><h3>{title}</h3><div class="text">{html.escape(reading.text)}</div>'
            f'<div class="confidence">confidence {percent(reading.confidence)}</div><div class="chars">{chars}</div></div>')


def sure_note(rec: Recognizer) -> str:
    threshold = rec.threshold()
    if threshold is None:
        return "these weights carry no calibration, so no answer is called sure or unsure."
    return (f"it is *sure* at a calibrated confidence of {percent(threshold)} or more"
            + ("" if rec.min_confidence is not None else " (the level that read 99% right on the calibration images)")
            + "; below that, ask the site for a new CAPTCHA.")


def build_ui(service: Service, examples: list[str]) -> gr.Blocks:
    spec = service.recognizer.spec
    scratch = tempfile.TemporaryDirectory(prefix="captcha-app-")  # the CSVs; removed when the process ends

    def read(path):
        """Read one CAPTCHA: the answer to submit (calibrated confidence, sure, why not), both forms' text,
        confidence and per-character confidences, and the time taken."""
        if not path:
            return None, None
        try:
            image, prediction = service.read_now(Path(path).name, Path(path))
        except CaptchaError as e:
            raise gr.Error(str(e))
        return prediction.to_dict(), (image, prediction)

    def show(state):
        if state is None:
            return (answer_card(None), card("one-go", "one-go", None), card("sequential", "sequential", None), "",
                    gr.Image(visible=False))
        image, p = state
        missing = "these weights have no such model"
        maps = attention_panels(image, p.sequential) if p.sequential is not None else None
        return (answer_card(p.answer), card("one-go", "one-go", p.one_go, missing),
                card("sequential", "sequential", p.sequential, missing),
                f"Read in {p.elapsed_ms:.0f} ms." + (" Below: where the sequential model looked for each "
                                                      "character (red), with what it read there." if maps else ""),
                gr.Image(maps, visible=maps is not None))

    def read_many(paths):
        if not paths:
            raise gr.Error("choose some images or a zip of images first")
        try:
            rows = service.call(service.read_rows, [(Path(p).name, Path(p)) for p in paths])
        except CaptchaError as e:
            raise gr.Error(str(e))
        out = Path(tempfile.mkdtemp(dir=scratch.name)) / "readings.csv"  # a folder each: same download name
        out.write_text(batch.csv_text(rows), newline="")
        return [batch.line(row) for row in rows], str(out)

    # delete_cache: uploads (people's images) and results leave Gradio's cache after an hour.
    with gr.Blocks(title="CAPTCHA reader", analytics_enabled=False, delete_cache=(3600, 3600)) as ui:
        gr.Markdown(f"## CAPTCHA reader\nTwo models read the same image: **one-go** reads every character at "
                    f"once; **sequential** reads one position at a time and shows where it looked. "
                    f"These weights read {html.escape(spec.describe())}. The **answer** is the more confident "
                    f"reading; {sure_note(service.recognizer)} REST API: [/docs](/docs).")
        with gr.Tab("Read one"):
            with gr.Row():
                with gr.Column(scale=2, min_width=260):
                    image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                     label="CAPTCHA (upload or paste)", height=260)
                    if examples:
                        gr.Examples(examples, inputs=image, label="Examples from data/ (file name = answer)",
                                    examples_per_page=10)
                with gr.Column(scale=3):
                    answer_box = gr.HTML(answer_card(None))
                    with gr.Row(equal_height=True):
                        one_go = gr.HTML(card("one-go", "one-go", None))
                        sequential = gr.HTML(card("sequential", "sequential", None))
                    elapsed = gr.Markdown()
                    maps = gr.Image(show_label=False, type="pil", format="png", interactive=False, elem_id="maps",
                                    buttons=["download", "fullscreen"], visible=False)
                    with gr.Accordion("JSON (what /api/predict returns)", open=False):
                        answer = gr.JSON(show_label=False)
            state = gr.State()
            image.change(read, image, [answer, state], api_name="predict").then(
                show, state, [answer_box, one_go, sequential, elapsed, maps], api_visibility="private")
        with gr.Tab("Read many"):
            files = gr.File(file_count="multiple", file_types=[*IMAGE_EXTENSIONS, ".zip"],
                            label=f"Images or zips (at most {service.limits.max_batch} images, "
                                  f"{service.limits.max_upload_mb:g} MB per file)")
            go = gr.Button("Read all", variant="primary")
            table = gr.Dataframe(headers=batch.COLUMNS, interactive=False, label="Readings")
            download = gr.File(label="Download as CSV", interactive=False)
            go.click(read_many, files, [table, download], api_name="predict_batch")
    return ui


# --- one app ---------------------------------------------------------------------------------

def create_app(recognizer: Recognizer, max_upload_mb: float = batch.MAX_UPLOAD_MB, max_batch: int = batch.MAX_BATCH,
               cors_origins=(), examples: list[str] | None = None) -> FastAPI:
    """REST routes first, then the UI mounted at / (a mount at / would shadow anything added after it)."""
    service = Service(recognizer, max_upload_mb, max_batch)
    if examples is None:
        examples = [str(p) for p in sorted((ROOT / "data").glob("*.png"))]
    app = build_api(service, cors_origins)
    return gr.mount_gradio_app(app, build_ui(service, examples), path="/",
                               max_file_size=service.limits.max_upload_bytes,
                               footer_links=["api", "gradio"], run_history=False, css=CSS,
                               ssr_mode=False)  # client-side rendering: no Node server, as tested


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the CAPTCHA reader: Gradio UI at /, REST API under /api, "
                                            "the seed's POST /predict/.")
    p.add_argument("--weights", default=os.environ.get("CAPTCHA_WEIGHTS", str(ROOT / "weights")),
                   help="weights folder, .safetensors file or Hub repo id (default: $CAPTCHA_WEIGHTS, else weights/)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)), help="default: $PORT, else 7860")
    p.add_argument("--max-upload-mb", type=float, default=batch.MAX_UPLOAD_MB,
                   help=f"per file and per zip member (default {batch.MAX_UPLOAD_MB})")
    p.add_argument("--max-batch", type=int, default=batch.MAX_BATCH,
                   help=f"images per batch, zip members counted (default {batch.MAX_BATCH})")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch CPU threads for the one inference worker (default: all cores)")
    p.add_argument("--min-confidence", type=float, metavar="P",
                   help="confidence an answer needs to be sure (default: the threshold stored with the weights)")
    p.add_argument("--cors-origins", nargs="*", default=(), metavar="ORIGIN",
                   help="origins allowed to call the API from a browser (default: none; never with credentials)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    try:
        recognizer = Recognizer.from_pretrained(args.weights, min_confidence=args.min_confidence)
    except CaptchaError as e:
        sys.exit(f"app.py: {e}")
    app = create_app(recognizer, args.max_upload_mb, args.max_batch, args.cors_origins)
    # An open tab or gradio_client holds a heartbeat stream forever; without a bound, a restart waits on it.
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
