"""asr serve: OpenAI's transcription API on 127.0.0.1, spoken to by the official client and by
hand-made requests, good and bad."""

from __future__ import annotations

import contextlib
import io
import json
import socket
import threading
import time

import numpy as np
import pytest
import soundfile as sf

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from asr.api import load  # noqa: E402
from asr.serve import ServeLimits, create_app  # noqa: E402
from conftest import fsdd_file  # noqa: E402


@contextlib.contextmanager
def running(app):
    """``app`` served by uvicorn on a free port of 127.0.0.1, in a thread; yields its base URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def server(tiny_model):
    checkpoint, _ = tiny_model
    with running(create_app(load(checkpoint), ServeLimits(max_upload_bytes=2_000_000, max_audio_seconds=60))) as url:
        yield url


def test_the_official_openai_client_transcribes_a_recording(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{server}/v1", api_key="unused", max_retries=0)
    with open(fsdd_file(3), "rb") as f:
        result = client.audio.transcriptions.create(model="whisper-1", file=f)
    assert result.text == "three"
    with open(fsdd_file(6), "rb") as f:
        verbose = client.audio.transcriptions.create(model="asr", file=f, response_format="verbose_json",
                                                     timestamp_granularities=["word", "segment"])
    assert verbose.text == "six" and verbose.duration == pytest.approx(sf.info(fsdd_file(6)).duration, abs=1e-3)
    assert [w.word for w in verbose.words] == ["six"] and 0 <= verbose.words[0].start < verbose.words[0].end
    assert verbose.segments[0].text == "six"
    with open(fsdd_file(0), "rb") as f:
        subtitles = client.audio.transcriptions.create(model="asr", file=f, response_format="srt")
    srt = pytest.importorskip("srt")
    (cue,) = list(srt.parse(subtitles))
    assert cue.content == "zero" and cue.end > cue.start


def test_plain_multipart_requests_in_every_format(server):
    audio = fsdd_file(8).read_bytes()
    for fmt, check in [("json", lambda r: r.json() == {"text": "eight"}),
                       ("text", lambda r: r.text == "eight\n"),
                       ("vtt", lambda r: r.text.startswith("WEBVTT") and "eight" in r.text),
                       ("verbose_json", lambda r: r.json()["segments"][0]["text"] == "eight"
                        and "words" not in r.json())]:
        r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("eight.wav", audio, "audio/wav")},
                       data={"model": "asr", "response_format": fmt}, timeout=60)
        assert r.status_code == 200 and check(r), (fmt, r.text)
    flac = io.BytesIO()  # any format libsndfile reads, at any rate
    sf.write(flac, np.repeat(sf.read(fsdd_file(8))[0], 2), 16000, format="FLAC")
    r = httpx.post(f"{server}/v1/audio/transcriptions", files={"file": ("eight.flac", flac.getvalue())},
                   data={"model": "asr"}, timeout=60)
    assert r.json() == {"text": "eight"}
    assert httpx.get(f"{server}/health").json()["status"] == "ok"
    assert httpx.get(f"{server}/v1/models").json()["data"][0]["object"] == "model"


def test_bad_requests_get_a_json_error_and_the_server_stays_up(server):
    url = f"{server}/v1/audio/transcriptions"
    wav = fsdd_file(1).read_bytes()
    boundary = "xyz"
    cut_multipart = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
                     f"Content-Type: audio/wav\r\n\r\n").encode() + wav[:500]
    long_audio = io.BytesIO()
    sf.write(long_audio, np.zeros(8000 * 61, np.float32), 8000, format="WAV", subtype="PCM_16")
    bad = {
        "no body": dict(content=b""),
        "json body": dict(json={"file": "x"}),
        "no file field": dict(data={"model": "asr"}, files={"other": ("a.wav", wav)}),
        "file as text": dict(data={"file": "hello", "model": "asr"}, files={"x": ("a", b"1")}),
        "empty file": dict(files={"file": ("a.wav", b"")}),
        "not audio": dict(files={"file": ("a.wav", b"this is not audio at all" * 10)}),
        "truncated wav": dict(files={"file": ("a.wav", wav[:30])}),
        "bad format": dict(files={"file": ("a.wav", wav)}, data={"response_format": "mp3"}),
        "bad granularity": dict(files={"file": ("a.wav", wav)},
                                data={"response_format": "verbose_json", "timestamp_granularities[]": "char"}),
        "granularity without verbose": dict(files={"file": ("a.wav", wav)},
                                            data={"timestamp_granularities[]": "word"}),
        "bad temperature": dict(files={"file": ("a.wav", wav)}, data={"temperature": "hot"}),
        "too long": dict(files={"file": ("long.wav", long_audio.getvalue())}),
        "too large": dict(files={"file": ("big.wav", b"\0" * 3_100_000)}),
        "cut multipart": dict(content=cut_multipart,
                              headers={"content-type": f"multipart/form-data; boundary={boundary}"}),
        "no boundary": dict(content=b"--x\r\n", headers={"content-type": "multipart/form-data"}),
    }
    for name, request in bad.items():
        r = httpx.post(url, timeout=60, **request)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        error = r.json()["error"]
        assert error["message"] and error["type"] == "invalid_request_error", name
    assert httpx.post(url, files={"file": ("big.wav", b"\0" * 3_100_000)}).status_code == 413
    assert httpx.post(url, files={"file": ("long.wav", long_audio.getvalue())}).json()["error"]["code"] == \
        "audio_too_long"
    assert httpx.get(url).status_code == 405 and httpx.get(f"{server}/nowhere").json()["error"]["message"]
    r = httpx.post(url, files={"file": ("one.wav", wav)}, data={"model": "asr"}, timeout=60)
    assert r.json() == {"text": "one"}  # still answering


class Slow:
    """A model that answers ``delay`` seconds late: later than a timeout however loaded the machine
    (a real transcription under a 1 us timeout could be done before the event loop saw the timer)."""

    def __init__(self, model, delay: float):
        self.model, self.delay = model, delay

    def transcribe_many(self, paths):
        time.sleep(self.delay)
        return self.model.transcribe_many(paths)

    def __getattr__(self, name):
        return getattr(self.model, name)


def test_limits_busy_and_timeout(tiny_model):
    checkpoint, _ = tiny_model
    audio = {"file": ("two.wav", fsdd_file(2).read_bytes())}
    with running(create_app(load(checkpoint), ServeLimits(max_concurrent=0))) as url:
        r = httpx.post(f"{url}/v1/audio/transcriptions", files=audio)
        assert r.status_code == 503 and r.json()["error"]["code"] == "server_busy"
    with running(create_app(Slow(load(checkpoint), 1.0), ServeLimits(timeout=0.05))) as url:
        r = httpx.post(f"{url}/v1/audio/transcriptions", files=audio)
        assert r.status_code == 504 and json.loads(r.text)["error"]["code"] == "timeout"
        assert httpx.get(f"{url}/health").status_code == 200
