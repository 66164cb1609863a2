"""Load test of `asr serve` on 127.0.0.1, from one run: latency, throughput, memory, bad input.

Builds ``--files`` recordings of 1-10 s (runs of FSDD test takes, 0.1-0.5 s apart), starts
`asr serve` in a process of its own, and transcribes the same files in this process first
(one `transcribe_many` call: the reference throughput). Then ``--clients`` threads send
``--requests`` requests in all through the OpenAI-style endpoint (bounded in count and by
``--max-seconds``), and it prints failures, p50/p99 latency, throughput against the
in-process reference, whether the server's transcripts equal the in-process ones, and the
server's resident memory over the run. Last, 21 kinds of bad request, each of which must get
a 4xx JSON error, and a good request after them.

    python3 scripts/bench_serve.py --model exp/fsdd/model.onnx --data-dir ../shared/data/fsdd/recordings
"""

from __future__ import annotations

import argparse
import io
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

from asr.api import load
from asr.audio import load_audio

RATE = 8000


def build_files(data_dir: Path, count: int, folder: Path, seed: int) -> list[Path]:
    takes = sorted(p for p in data_dir.glob("*.wav") if int(p.stem.split("_")[2]) < 5)
    rng = np.random.default_rng(seed)
    clips = {p: load_audio(p, RATE) for p in takes}
    paths = []
    for n in range(count):
        target, parts = rng.uniform(1, 10) * RATE, []
        while sum(len(p) for p in parts) < target:
            parts += [clips[takes[rng.integers(len(takes))]], np.zeros(int(rng.uniform(0.1, 0.5) * RATE), np.float32)]
        audio = np.concatenate(parts)[:int(target)]
        paths.append(folder / f"request-{n:03d}.wav")
        sf.write(paths[-1], audio + rng.normal(0, 3e-4, len(audio)).astype(np.float32), RATE, subtype="PCM_16")
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def raw_request(port: int, data: bytes) -> httpx.Response:
    """Send ``data`` as it is and read the answer (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        answer = b""
        while b"\r\n\r\n" not in answer or len(answer.split(b"\r\n\r\n", 1)[1]) < _length(answer):
            chunk = s.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    return httpx.Response(int(head.split()[1]), content=body)


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0


def bad_requests(files: list[Path], folder: Path) -> dict[str, dict]:
    wav = files[0].read_bytes()
    long = io.BytesIO()
    sf.write(long, np.zeros(RATE * 31, np.float32), RATE, format="WAV", subtype="PCM_16")
    nan = io.BytesIO()
    sf.write(nan, np.full(RATE, np.nan, np.float32), RATE, format="WAV", subtype="FLOAT")
    part = (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n"
            b"Content-Type: audio/wav\r\n\r\n") + wav[:400]
    return {
        "empty body": dict(content=b""),
        "JSON body": dict(json={"file": "a.wav"}),
        "raw audio body": dict(content=wav, headers={"content-type": "audio/wav"}),
        "text/plain body": dict(content=b"hello", headers={"content-type": "text/plain"}),
        "no file field": dict(files={"audio": ("a.wav", wav)}),
        "file as a text field": dict(data={"file": "a.wav"}, files={"x": ("x", b"1")}),
        "two files": dict(files=[("file", ("a.wav", wav)), ("file", ("b.wav", wav))]),
        "empty file": dict(files={"file": ("a.wav", b"")}),
        "not audio": dict(files={"file": ("notes.txt", b"not audio at all " * 64)}),
        "truncated header": dict(files={"file": ("a.wav", wav[:30])}),
        "NaN samples": dict(files={"file": ("nan.wav", nan.getvalue())}),
        "audio too long": dict(files={"file": ("long.wav", long.getvalue())}),
        "upload too large": dict(files={"file": ("big.wav", b"\0" * 26_000_000)}),
        "Content-Length too large": dict(raw=b"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\n"
                                             b"Content-Type: multipart/form-data; boundary=b\r\n"
                                             b"Content-Length: 999999999999\r\n\r\n--b\r\n"),
        "multipart cut short": dict(content=part, headers={"content-type": "multipart/form-data; boundary=b"}),
        "multipart without boundary": dict(content=b"--b\r\n", headers={"content-type": "multipart/form-data"}),
        "unknown response_format": dict(files={"file": ("a.wav", wav)}, data={"response_format": "mp3"}),
        "unknown granularity": dict(files={"file": ("a.wav", wav)},
                                    data={"response_format": "verbose_json", "timestamp_granularities[]": "char"}),
        "granularity without verbose_json": dict(files={"file": ("a.wav", wav)},
                                                 data={"timestamp_granularities[]": "word"}),
        "temperature not a number": dict(files={"file": ("a.wav", wav)}, data={"temperature": "warm"}),
        "GET on the endpoint": dict(method="GET"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint (.pt) or export (.onnx)")
    parser.add_argument("--data-dir", required=True, type=Path, help="FSDD recordings/")
    parser.add_argument("--files", type=int, default=100, help="distinct recordings")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--max-seconds", type=float, default=600, help="stop sending after this long")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="bench_serve_"))
    files = build_files(args.data_dir, args.files, folder, args.seed)
    audio_seconds = [sf.info(p).duration for p in files]
    with load(args.model) as model:
        list(model.transcribe_many(files[:4]))  # warm
        start = time.perf_counter()
        reference = [t.text for t in model.transcribe_many(files)]
        in_process = sum(audio_seconds) / (time.perf_counter() - start)

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([sys.executable, "-m", "asr", "serve", "--model", args.model, "--port", str(port),
                               "--max-audio-seconds", "30"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"asr serve did not start: {server.stdout.read().decode()[-2000:]}")
            time.sleep(0.2)
        for p in files[:4]:  # warm
            httpx.post(f"{url}/v1/audio/transcriptions", files={"file": (p.name, p.read_bytes())}, timeout=60)
        start_rss = rss_mb(server.pid)

        todo: queue.Queue[int] = queue.Queue()
        for n in range(args.requests):
            todo.put(n)
        latencies, failures, mismatches, rss = [], [], [], []
        lock = threading.Lock()
        stop_at = time.monotonic() + args.max_seconds

        def client() -> None:
            with httpx.Client(timeout=120) as http:
                while time.monotonic() < stop_at:
                    try:
                        n = todo.get_nowait()
                    except queue.Empty:
                        return
                    path = files[n % len(files)]
                    begin = time.perf_counter()
                    try:
                        r = http.post(f"{url}/v1/audio/transcriptions", data={"model": "asr"},
                                      files={"file": (path.name, path.read_bytes(), "audio/wav")})
                        ok = r.status_code == 200
                        text = r.json().get("text") if ok else r.text
                    except httpx.HTTPError as e:
                        ok, text = False, repr(e)
                    with lock:
                        latencies.append(time.perf_counter() - begin)
                        if not ok:
                            failures.append(text)
                        elif text != reference[n % len(files)]:
                            mismatches.append(n)

        def sample() -> None:
            while any(t.is_alive() for t in threads):
                rss.append(rss_mb(server.pid))
                time.sleep(0.25)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        begin = time.perf_counter()
        for t in threads:
            t.start()
        sampler = threading.Thread(target=sample)
        sampler.start()
        for t in threads:
            t.join()
        sampler.join()
        elapsed = time.perf_counter() - begin
        done = len(latencies)
        sent_audio = sum(audio_seconds[n % len(files)] for n in range(done))
        ms = np.array(latencies) * 1000
        print(f"{done} requests of 1-10 s ({sent_audio:.0f} s of audio) from {args.clients} clients in "
              f"{elapsed:.1f} s; {os.cpu_count()} cores; model {args.model}")
        print(f"  failures {len(failures)}, transcripts unlike in-process {len(mismatches)}")
        print(f"  latency p50 {np.percentile(ms, 50):.0f} ms, p99 {np.percentile(ms, 99):.0f} ms, "
              f"max {ms.max():.0f} ms")
        print(f"  throughput {done / elapsed:.1f} requests/s, {sent_audio / elapsed:.0f} s of audio/s; in-process "
              f"transcribe_many of the same files {in_process:.0f} s of audio/s: ratio {sent_audio / elapsed / in_process:.2f}")
        quarter = rss[:max(1, len(rss) // 4)]
        print(f"  server RSS: {start_rss:.0f} MB warm, {max(quarter):.0f} MB peak in the first quarter, "
              f"{max(rss):.0f} MB peak overall, {rss[-1]:.0f} MB at the end")
        for failure in failures[:3]:
            print(f"  failure: {failure[:200]}")

        answered = 0
        print("\nbad requests:")
        for name, request in bad_requests(files, folder).items():
            if "raw" in request:  # what httpx will not send: a body shorter than its Content-Length
                r = raw_request(port, request["raw"])
            else:
                method = request.pop("method", "POST")
                r = httpx.request(method, f"{url}/v1/audio/transcriptions", timeout=60, **request)
            try:
                message = r.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = f"NOT A JSON ERROR: {r.text[:80]!r}"
            good = 400 <= r.status_code < 500 and not message.startswith("NOT A JSON")
            answered += good
            print(f"  {'ok ' if good else 'BAD'} {r.status_code} {name}: {message[:90]}")
        r = httpx.post(f"{url}/v1/audio/transcriptions", files={"file": (files[0].name, files[0].read_bytes())})
        alive = r.status_code == 200 and r.json()["text"] == reference[0]
        print(f"{answered} of 21 bad requests got a 4xx JSON error; afterwards the server "
              f"{'answers correctly' if alive else 'FAILS'} (RSS {rss_mb(server.pid):.0f} MB)")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


if __name__ == "__main__":
    main()
