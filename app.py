"""One process, three doors to the same Recognizer: the Gradio UI at /, a REST API under /api
(docs at /docs), and the seed's POST /predict/, kept for its users.

    python app.py                                   # http://localhost:7860, weights from weights/
    python app.py --weights runs/x --port 8000 --max-upload-mb 5 --max-batch 64 --threads 2

Models load once at start-up. All inference runs on one worker thread: the event loop (health
checks, the UI's own traffic) never waits on torch, and requests never fight over the cores.
Presentation only: what the pages and JSON show comes from `Prediction`.
"""
from __future__ import annotations

import argparse
import asyncio
import csv
import html
import io
import os
import sys
import tempfile
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import gradio as gr
import uvicorn
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException

from captcha.errors import CaptchaError
from captcha.images import IMAGE_EXTENSIONS, open_image
from captcha.overlay import attention_panels
from captcha.recognizer import Reading, Recognizer, set_threads

ROOT = Path(__file__).resolve().parent
MB = 1 << 20
MULTIPART_SLACK = 64 * 1024  # boundaries and part headers around the file bytes
COLUMNS = ["file", "one_go", "one_go_confidence", "sequential", "sequential_confidence", "elapsed_ms", "error"]


class Refused(CaptchaError):
    """An upload over a limit (size, count): answered 413 rather than the 422 of an unreadable image."""

    status = 413


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
    """The recognizer, the limits every door applies, and the one thread inference runs on."""

    def __init__(self, recognizer: Recognizer, max_upload_mb: float = 5, max_batch: int = 64):
        self.recognizer = recognizer
        self.max_upload_mb, self.max_upload_bytes = max_upload_mb, int(max_upload_mb * MB)
        self.max_batch = max_batch
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    async def run(self, fn, *args):
        """From async code: run fn on the inference thread without blocking the event loop."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    def call(self, fn, *args):
        """From Gradio's worker threads: the same queue, waited on."""
        return self.pool.submit(fn, *args).result()

    def decode(self, name: str, data: bytes):
        # The request body limit already stopped anything far larger; this is the exact per-file check.
        if len(data) > self.max_upload_bytes:
            raise Refused(f"{name}: {len(data):,} bytes is over the {self.max_upload_mb:g} MB limit per file")
        return open_image(data, name=name)

    def read_one(self, name: str, data: bytes):
        image = self.decode(name, data)
        return image, self.recognizer.predict(image)

    def unpack(self, files: list[tuple[str, bytes]]) -> list[tuple[str, bytes | CaptchaError]]:
        """Uploaded (name, bytes) -> one entry per image, zips opened; an entry that cannot be read
        carries its error. Refuses the whole batch, before extracting anything, if it holds too many."""
        entries = []
        for name, data in files:
            if data[:4] != b"PK\x03\x04":
                entries.append((name, data))
                continue
            try:
                archive = zipfile.ZipFile(io.BytesIO(data))
                entries += [(f"{name}/{m.filename}", (archive, m)) for m in archive.infolist()
                            if not m.is_dir() and m.filename.lower().endswith(IMAGE_EXTENSIONS)
                            and not m.filename.startswith("__MACOSX/") and not Path(m.filename).name.startswith(".")]
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                entries.append((name, CaptchaError(f"{name}: not a readable zip archive ({e})")))
        if len(entries) > self.max_batch:
            raise Refused(f"{len(entries)} images in one batch; the limit is {self.max_batch}")
        return [(name, self.extract(name, *data) if isinstance(data, tuple) else data) for name, data in entries]

    def extract(self, name: str, archive: zipfile.ZipFile, member: zipfile.ZipInfo) -> bytes | CaptchaError:
        try:  # never trust the member's stated size: read at most one byte past the limit
            with archive.open(member) as f:
                return f.read(self.max_upload_bytes + 1)
        except Exception as e:  # encrypted, unsupported compression, corrupt stream
            return CaptchaError(f"{name}: cannot be extracted from the zip ({e})")

    def read_batch(self, files: list[tuple[str, bytes]]) -> list[dict]:
        """One dict per image, in order: {"file", **Prediction.to_dict()} or {"file", "error"}."""
        rows, images = [], []
        for name, data in self.unpack(files):
            try:
                if isinstance(data, CaptchaError):
                    raise data
                images.append(self.decode(name, data))
                rows.append({"file": name})
            except CaptchaError as e:
                rows.append({"file": name, "error": str(e)})
        predictions = iter(self.recognizer.predict_batch(images))
        for row in rows:
            if "error" not in row:
                row.update(next(predictions).to_dict())
        return rows


def flat(row: dict) -> list:
    """A batch row as a table/CSV line (COLUMNS)."""
    out = {"file": row["file"], "elapsed_ms": row.get("elapsed_ms"), "error": row.get("error", "")}
    for form in ("one_go", "sequential"):
        reading = row.get(form) or {}
        out[form], out[f"{form}_confidence"] = reading.get("text", ""), reading.get("confidence")
    return [out[c] for c in COLUMNS]


# --- REST ------------------------------------------------------------------------------------

def build_api(service: Service, cors_origins=()) -> FastAPI:
    app = FastAPI(title="CAPTCHA reader", version="1", description="Read text CAPTCHAs with two models: "
                  "one-go (all characters at once) and sequential (one position at a time). The UI is at /.")
    one_file = service.max_upload_bytes + MULTIPART_SLACK
    app.add_middleware(BodyLimit, limits={"/api/predict": one_file, "/predict/": one_file,
                                          "/api/predict/batch": service.max_batch * one_file},
                       detail=f"the request is too large: at most {service.max_upload_mb:g} MB per file "
                              f"and {service.max_batch} files per batch")
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
                "runtime": {"engine": rec.engine, "precision": rec.precision},
                "limits": {"max_upload_mb": service.max_upload_mb, "max_batch": service.max_batch}}

    @app.post("/api/predict")
    async def predict(file: UploadFile = File(..., description="a CAPTCHA image")) -> dict:
        """Both readings of one image, with per-character confidences."""
        _, prediction = await service.run(service.read_one, file.filename or "upload", await file.read())
        return prediction.to_dict()

    @app.post("/api/predict/batch")
    async def predict_batch(files: list[UploadFile] = File(..., description="images and/or zips of images")) -> dict:
        """Many images (zips are opened): one result per image, in order; an unreadable image gets an
        `error` instead of readings and does not fail the others."""
        uploads = [(f.filename or "upload", await f.read()) for f in files]
        return {"results": await service.run(service.read_batch, uploads)}

    @app.post("/predict/", summary="The seed's API (kept for its users)")
    async def seed_predict(image: UploadFile = File(...)) -> dict:
        """The seed backend's route and answer shape: field `image`, the two texts only."""
        _, p = await service.run(service.read_one, image.filename or "upload", await image.read())
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
"""


def card(form: str, title: str, reading: Reading | None, note: str = "upload an image to read it") -> str:
    """One form's reading as HTML: the text, its confidence, and each character tinted red..green by its own."""
    if reading is None:
        return f'<div class="reading {form}"><h3>{title}</h3><div class="empty">{html.escape(note)}</div></div>'
    chars = "".join(f'<span class="char" style="--hue: {round(120 * c.confidence)}">'
                    f'<b>{html.escape(c.char)}</b><small>{c.confidence:.0%}</small></span>' for c in reading.chars)
    return (f'<div class="reading {form}"><h3>{title}</h3><div class="text">{html.escape(reading.text)}</div>'
            f'<div class="confidence">confidence {reading.confidence:.1%}</div><div class="chars">{chars}</div></div>')


def build_ui(service: Service, examples: list[str]) -> gr.Blocks:
    spec = service.recognizer.spec
    scratch = tempfile.TemporaryDirectory(prefix="captcha-app-")  # the CSVs; removed when the process ends

    def read(path):
        """Read one CAPTCHA: both forms' text, confidence and per-character confidences, and the time taken."""
        if not path:
            return None, None
        try:
            image, prediction = service.call(service.read_one, Path(path).name, Path(path).read_bytes())
        except CaptchaError as e:
            raise gr.Error(str(e))
        return prediction.to_dict(), (image, prediction)

    def show(state):
        if state is None:
            return card("one-go", "one-go", None), card("sequential", "sequential", None), "", gr.Image(visible=False)
        image, p = state
        missing = "these weights have no such model"
        maps = attention_panels(image, p.sequential) if p.sequential is not None else None
        return (card("one-go", "one-go", p.one_go, missing), card("sequential", "sequential", p.sequential, missing),
                f"Read in {p.elapsed_ms:.0f} ms." + (" Below: where the sequential model looked for each "
                                                      "character (red), with what it read there." if maps else ""),
                gr.Image(maps, visible=maps is not None))

    def read_many(paths):
        if not paths:
            raise gr.Error("choose some images or a zip of images first")
        try:
            rows = service.call(service.read_batch, [(Path(p).name, Path(p).read_bytes()) for p in paths])
        except CaptchaError as e:
            raise gr.Error(str(e))
        table = [flat(r) for r in rows]
        out = Path(tempfile.mkdtemp(dir=scratch.name)) / "readings.csv"  # a folder each: same download name
        with open(out, "w", newline="") as f:
            csv.writer(f).writerows([COLUMNS, *table])
        return table, str(out)

    # delete_cache: uploads (people's images) and results leave Gradio's cache after an hour.
    with gr.Blocks(title="CAPTCHA reader", analytics_enabled=False, delete_cache=(3600, 3600)) as ui:
        gr.Markdown(f"## CAPTCHA reader\nTwo models read the same image: **one-go** reads every character at "
                    f"once; **sequential** reads one position at a time and shows where it looked. "
                    f"These weights read {html.escape(spec.describe())}. "
                    f"REST API: [/docs](/docs).")
        with gr.Tab("Read one"):
            with gr.Row():
                with gr.Column(scale=2, min_width=260):
                    image = gr.Image(type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                     label="CAPTCHA (upload or paste)", height=260)
                    if examples:
                        gr.Examples(examples, inputs=image, label="Examples from data/ (file name = answer)",
                                    examples_per_page=10)
                with gr.Column(scale=3):
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
                show, state, [one_go, sequential, elapsed, maps], api_visibility="private")
        with gr.Tab("Read many"):
            files = gr.File(file_count="multiple", file_types=[*IMAGE_EXTENSIONS, ".zip"],
                            label=f"Images or zips (at most {service.max_batch} images, "
                                  f"{service.max_upload_mb:g} MB per file)")
            go = gr.Button("Read all", variant="primary")
            table = gr.Dataframe(headers=COLUMNS, interactive=False, label="Readings")
            download = gr.File(label="Download as CSV", interactive=False)
            go.click(read_many, files, [table, download], api_name="predict_batch")
    return ui


# --- one app ---------------------------------------------------------------------------------

def create_app(recognizer: Recognizer, max_upload_mb: float = 5, max_batch: int = 64, cors_origins=(),
               examples: list[str] | None = None) -> FastAPI:
    """REST routes first, then the UI mounted at / (a mount at / would shadow anything added after it)."""
    service = Service(recognizer, max_upload_mb, max_batch)
    if examples is None:
        examples = [str(p) for p in sorted((ROOT / "data").glob("*.png"))]
    app = build_api(service, cors_origins)
    return gr.mount_gradio_app(app, build_ui(service, examples), path="/", max_file_size=service.max_upload_bytes,
                               footer_links=["api", "gradio"], run_history=False, css=CSS,
                               ssr_mode=False)  # client-side rendering: no Node server, as tested


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Serve the CAPTCHA reader: Gradio UI at /, REST API under /api, "
                                            "the seed's POST /predict/.")
    p.add_argument("--weights", default=os.environ.get("CAPTCHA_WEIGHTS", str(ROOT / "weights")),
                   help="weights folder, .safetensors file or Hub repo id (default: $CAPTCHA_WEIGHTS, else weights/)")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=int, default=int(os.environ.get("PORT", 7860)), help="default: $PORT, else 7860")
    p.add_argument("--max-upload-mb", type=float, default=5, help="per file (default 5)")
    p.add_argument("--max-batch", type=int, default=64, help="images per batch request (default 64)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch CPU threads for the one inference worker (default: all cores)")
    p.add_argument("--cors-origins", nargs="*", default=(), metavar="ORIGIN",
                   help="origins allowed to call the API from a browser (default: none; never with credentials)")
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    set_threads(args.threads)
    try:
        recognizer = Recognizer.from_pretrained(args.weights)
    except CaptchaError as e:
        sys.exit(f"app.py: {e}")
    app = create_app(recognizer, args.max_upload_mb, args.max_batch, args.cors_origins)
    # An open tab or gradio_client holds a heartbeat stream forever; without a bound, a restart waits on it.
    uvicorn.run(app, host=args.host, port=args.port, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    main()
