"""``asr serve``: a model behind OpenAI's speech-to-text API, on FastAPI and uvicorn.

    POST /v1/audio/transcriptions   multipart: file, model, response_format (json, text, srt,
                                    vtt, verbose_json), timestamp_granularities[] (word, segment),
                                    language, prompt, temperature
    GET  /v1/models                 the one model served
    GET  /health                    status, and requests running and waiting

Existing clients work unchanged (the ``openai`` package with ``base_url`` pointed here,
curl, ...); the ``model`` field is accepted whatever it names. Requests are limited in
upload size, audio duration, how many are admitted at once (running or waiting; more get
503 at once) and time (504). Every error is a JSON body in OpenAI's shape,
``{"error": {"message", "type", "param", "code"}}``, with a 4xx status for bad input.

The model runs in one thread of its own, off the event loop. Each round it takes every
request waiting and transcribes them together (``Model.transcribe_many``), so concurrent
requests share batches, and a long upload is cut at pauses like any recording.
"""

import asyncio
import json
import math
import os
import queue
import re
import shutil
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("word", "segment")


@dataclass(frozen=True)
class ServeLimits:
    max_upload_bytes: int = 25_000_000  # OpenAI's own limit is 25 MB
    max_audio_seconds: float = 3600.0
    max_concurrent: int = 64  # requests admitted at once, running or waiting
    timeout: float = 600.0  # seconds from admission to answer


class ApiError(Exception):
    """An error answered as OpenAI's JSON error body."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def body(self) -> dict:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}


@dataclass
class _Job:
    path: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    cancelled: bool = False  # timed out while waiting: skip it


@dataclass
class Engine:
    """The model in a thread of its own: jobs wait in a queue, and each round takes them all."""

    model: object  # asr.api.Model
    jobs: "queue.Queue[_Job | None]" = field(default_factory=queue.Queue)
    running: int = 0

    def __post_init__(self):
        self.thread = threading.Thread(target=self._loop, name="asr-engine", daemon=True)
        self.thread.start()

    def submit(self, path: str) -> asyncio.Future:
        loop = asyncio.get_running_loop()
        job = _Job(path, loop, loop.create_future())
        job.future.add_done_callback(lambda f: setattr(job, "cancelled", f.cancelled()))
        self.jobs.put(job)
        return job.future

    def close(self) -> None:
        self.jobs.put(None)
        self.thread.join(timeout=30)
        self.model.close()

    def _loop(self) -> None:
        while True:
            batch = [self.jobs.get()]
            while True:  # everything that is waiting goes into this round
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    break
            if None in batch:
                return
            batch = [job for job in batch if not job.cancelled]
            self.running = len(batch)
            try:
                for job, result in zip(batch, self.model.transcribe_many([job.path for job in batch])):
                    _answer(job, result)
            except Exception as e:  # the model failed: every job of the round hears of it
                for job in batch:
                    _answer(job, e)
            finally:
                self.running = 0


def _answer(job: _Job, result) -> None:
    def settle():
        if not job.future.done():
            if isinstance(result, Exception):
                job.future.set_exception(result)
            else:
                job.future.set_result(result)

    job.loop.call_soon_threadsafe(settle)


def create_app(model, limits: ServeLimits = ServeLimits(), name: str = "asr"):
    """The ASGI app serving ``model`` (an ``asr.api.Model``)."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, PlainTextResponse
    from starlette.exceptions import HTTPException

    engine: Engine | None = None
    admitted = 0

    @asynccontextmanager
    async def lifespan(app):
        nonlocal engine
        engine = Engine(model)
        yield
        await asyncio.get_running_loop().run_in_executor(None, engine.close)

    app = FastAPI(title="asr", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(ApiError)
    async def api_error(request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(HTTPException)
    async def http_error(request, e: HTTPException):
        return JSONResponse(ApiError(e.status_code, str(e.detail)).body(), status_code=e.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, e: RequestValidationError):
        return JSONResponse(ApiError(400, f"invalid request: {e.errors()[:1]}").body(), status_code=400)

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": name, "admitted": admitted, "running": engine.running if engine else 0}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [{"id": name, "object": "model", "owned_by": "asr"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request):
        nonlocal admitted
        if admitted >= limits.max_concurrent:
            raise ApiError(503, f"the server is busy ({limits.max_concurrent} requests running or waiting); "
                                "try again shortly", code="server_busy")
        admitted += 1
        folder = tempfile.mkdtemp(prefix="asr-serve-")
        try:
            form = await _read_form(request)
            fields = _fields(form)
            upload = form.get("file")
            path = await _save_upload(upload, folder, limits.max_upload_bytes)
            _check_duration(path, upload.filename, limits.max_audio_seconds)
            try:
                result = await asyncio.wait_for(engine.submit(path), limits.timeout)
            except asyncio.TimeoutError:
                raise ApiError(504, f"transcription took longer than {limits.timeout:g} s", code="timeout") from None
            if result.error:
                raise ApiError(400, result.error.replace(path, upload.filename or "file"), param="file",
                               code="invalid_audio")
            return _response(result, fields, JSONResponse, PlainTextResponse)
        finally:
            admitted -= 1
            shutil.rmtree(folder, ignore_errors=True)

    return BodyLimit(app, limits.max_upload_bytes)


async def _read_form(request):
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ApiError(400, "the request must be multipart/form-data with the audio in a 'file' field "
                            f"(got {content_type or 'no content type'})", code="invalid_content_type")
    try:
        return await request.form(max_files=1, max_fields=32)
    except Exception as e:  # multipart's parse errors, and starlette's limits on fields and files
        if request.scope.get(TOO_LARGE):
            raise ApiError(413, "request larger than this server's upload limit", code="file_too_large") from None
        detail = getattr(e, "detail", None) or str(e) or type(e).__name__
        raise ApiError(400, f"malformed multipart body ({detail})", code="invalid_multipart") from None


def _fields(form) -> dict:
    from starlette.datastructures import UploadFile

    upload = form.get("file")
    if upload is None:
        raise ApiError(400, "no 'file' field: send the audio as a multipart file named 'file'", param="file")
    if not isinstance(upload, UploadFile):
        raise ApiError(400, "'file' must be a file upload, not a text field", param="file")
    fmt = form.get("response_format") or "json"
    if fmt not in RESPONSE_FORMATS:
        raise ApiError(400, f"response_format must be one of {', '.join(RESPONSE_FORMATS)}, not {fmt!r}",
                       param="response_format")
    granularities = form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities")
    for g in granularities:
        if g not in GRANULARITIES:
            raise ApiError(400, f"timestamp_granularities must be word and/or segment, not {g!r}",
                           param="timestamp_granularities")
    if granularities and fmt != "verbose_json":
        raise ApiError(400, "timestamp_granularities needs response_format verbose_json",
                       param="timestamp_granularities")
    temperature = form.get("temperature")
    if temperature is not None:
        try:
            if not 0.0 <= float(temperature) <= 1.0:
                raise ValueError
        except ValueError:
            raise ApiError(400, f"temperature must be a number from 0 to 1, not {temperature!r}",
                           param="temperature") from None
    return {"format": fmt, "granularities": set(granularities) or {"segment"},
            "language": str(form.get("language") or "")}


async def _save_upload(upload, folder: str, limit: int) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "_", Path(upload.filename or "audio").name)[-100:] or "audio"
    path = os.path.join(folder, name)
    size = 0
    with open(path, "wb") as out:
        while chunk := await upload.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"{upload.filename}: larger than this server's limit of {limit / 1e6:g} MB",
                               param="file", code="file_too_large")
            out.write(chunk)
    if size == 0:
        raise ApiError(400, f"{upload.filename or 'file'}: empty file (0 bytes)", param="file", code="invalid_audio")
    return path


def _check_duration(path: str, filename: str | None, limit: float) -> None:
    import soundfile as sf

    try:
        info = sf.info(path)
    except Exception as e:
        reason = str(e).split(":")[-1].strip() or type(e).__name__
        raise ApiError(400, f"{filename or 'file'}: not a readable audio file ({reason})", param="file",
                       code="invalid_audio") from None
    if info.frames <= 0:
        raise ApiError(400, f"{filename or 'file'}: audio has no samples", param="file", code="invalid_audio")
    seconds = info.frames / info.samplerate
    if seconds > limit:
        raise ApiError(400, f"{filename or 'file'}: {seconds:.0f} s of audio; this server takes at most {limit:g} s",
                       param="file", code="audio_too_long")


def _response(result, fields: dict, JSONResponse, PlainTextResponse):
    from asr.outputs import render

    fmt = fields["format"]
    if fmt == "json":
        return JSONResponse({"text": result.text})
    if fmt == "text":
        return PlainTextResponse(result.text + "\n")
    if fmt in ("srt", "vtt"):
        return PlainTextResponse(render(result, fmt), media_type="text/vtt" if fmt == "vtt" else "text/plain")
    body = {"task": "transcribe", "language": fields["language"] or "unknown",
            "duration": round(result.duration, 3), "text": result.text}
    if "segment" in fields["granularities"]:
        body["segments"] = [_segment(i, s) for i, s in enumerate(result.segments)]
    if "word" in fields["granularities"]:
        body["words"] = [{"word": w.word, "start": round(w.start, 3), "end": round(w.end, 3)} for w in result.words]
    return JSONResponse(body)


def _segment(index: int, segment) -> dict:
    """A segment as OpenAI's verbose_json has it, with the fields this model can give."""
    text = segment.text.encode("utf-8")
    confidences = [max(w.confidence, 1e-6) for w in segment.words]
    return {"id": index, "seek": round(segment.start * 100), "start": round(segment.start, 3),
            "end": round(segment.end, 3), "text": segment.text, "temperature": 0.0,
            "avg_logprob": round(sum(math.log(c) for c in confidences) / len(confidences), 4) if confidences else None,
            "compression_ratio": round(len(text) / len(zlib.compress(text)), 3) if text else 0.0}


TOO_LARGE = "asr.body_too_large"  # set in the ASGI scope when BodyLimit cut a body short


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets 413 without being read whole:
    at once by its Content-Length, else when the bytes that arrive pass the limit (the app
    then sees the body end early, and ``_read_form`` answers 413)."""

    SLACK = 1_000_000  # bytes of multipart framing and other fields allowed on top of the upload

    def __init__(self, app, limit: int):
        self.app, self.limit, self.cap = app, limit, limit + self.SLACK

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.cap):
            return await self._reject(send)
        received = 0

        async def counting_receive():
            nonlocal received
            if scope.get(TOO_LARGE):
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.cap:
                    scope[TOO_LARGE] = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counting_receive, send)

    async def _reject(self, send):
        body = json.dumps(ApiError(413, f"request larger than this server's upload limit of "
                                        f"{self.limit / 1e6:g} MB", code="file_too_large").body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def serve(model_path: str, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits = ServeLimits(),
          device: str = "auto", workers: int | None = None, tuned: bool = True) -> None:
    """Load ``model_path`` and serve it until interrupted."""
    import uvicorn

    from asr.api import load

    model = load(model_path, device=device, tuned=tuned, workers=workers)
    app = create_app(model, limits, name=Path(model_path).stem)
    print(f"serving {model_path} on http://{host}:{port}/v1/audio/transcriptions", flush=True)
    started = time.monotonic()
    uvicorn.run(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=5)
    print(f"stopped after {time.monotonic() - started:.0f} s", flush=True)
