"""speakcli serve with Piper: /v1/info latency under 8 synthesis clients, time to first byte, throughput vs batch."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from bench.common import BIN, med, pct, table

CLIENTS = 8
LINES = [f"Line {i}: the quick brown fox jumps over the lazy dog, then rests a while." for i in range(80)]


@contextmanager
def server(*engine: str) -> Iterator[str]:
    """A `speakcli serve` subprocess on a free loopback port (Piper unless `engine` flags say otherwise); its URL."""
    engine = engine or ("--engine", "piper")
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakcli", "serve", *engine, "--port", "0", "--max-queue", "64"],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            found = re.search(r"serving on (http://\S+)", line)
            if found:
                threading.Thread(target=proc.stderr.read, daemon=True).start()  # keep the pipe drained
                yield found.group(1)
                break
        else:
            raise RuntimeError("speakcli serve did not start")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)


def first_byte(url: str, path: str, body: dict[str, object]) -> float:
    with httpx.Client(base_url=url, timeout=60) as c:
        start = time.perf_counter()
        with c.stream("POST", path, json=body) as r:
            chunks = r.iter_bytes()
            next(chunks)
            took = time.perf_counter() - start
            for _ in chunks:
                pass
    return took


def clients_through(url: str, lines: list[str], stop_when_done: threading.Event | None = None) -> float:
    """Wall seconds for CLIENTS concurrent clients to make every line, one request per line."""
    todo: queue.Queue[str] = queue.Queue()
    for line in lines:
        todo.put(line)

    def client() -> None:
        with httpx.Client(base_url=url, timeout=300) as c:
            while True:
                try:
                    text = todo.get_nowait()
                except queue.Empty:
                    return
                r = c.post("/v1/synthesize", json={"text": text})
                r.raise_for_status()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if stop_when_done is not None:
        stop_when_done.set()
    return time.perf_counter() - start


def info_latencies(url: str, stop: threading.Event) -> list[float]:
    got = []
    with httpx.Client(base_url=url, timeout=30) as c:
        while not stop.is_set():
            start = time.perf_counter()
            c.get("/v1/info").raise_for_status()
            got.append(time.perf_counter() - start)
            stop.wait(0.05)
    return got


def batch_seconds(lines: list[str], tmp: Path, n: int) -> float:
    src = tmp / f"lines{n}.txt"
    src.write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "speakcli"), "batch", str(src), "-o", str(tmp / f"out{n}"), "--engine", "piper", "-q"],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def say_seconds(tmp: Path, name: str, *flags: str, text: str = "Hello there.") -> float:
    """Seconds the whole `speakcli say TEXT -o FILE FLAGS` command takes (Piper unless FLAGS name an engine)."""
    engine = () if "--engine" in flags else ("--engine", "piper")
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "speakcli"), "say", text, *engine, "-o", str(tmp / f"{name}.wav"), *flags],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def run(runs: int) -> str:
    ttfb_synth, ttfb_openai, latencies, served, batched, cold, warm = [], [], [], [], [], [], []
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp, server() as url:
        first_byte(url, "/v1/synthesize", {"text": "Warm up.", "stream": True})
        for _ in range(max(runs, 5) * 2):
            ttfb_synth.append(first_byte(url, "/v1/synthesize", {"text": "Hello there.", "stream": True}))
            ttfb_openai.append(
                first_byte(url, "/v1/audio/speech", {"model": "tts-1", "input": "Hello there.", "voice": "alloy"})
            )
        for i in range(max(runs, 3)):  # interleaved: `say` loading its own model, then through the server
            cold.append(say_seconds(Path(tmp), f"cold{i}", "--no-server"))
            warm.append(say_seconds(Path(tmp), f"warm{i}"))
        for i in range(runs):  # interleaved: the server's clients, then batch on the same lines
            stop = threading.Event()
            got: list[float] = []
            poller = threading.Thread(target=lambda got=got, stop=stop: got.extend(info_latencies(url, stop)))
            poller.start()
            served.append(clients_through(url, LINES, stop))
            poller.join()
            latencies += got
            batched.append(batch_seconds(LINES, Path(tmp), i))
    ms = lambda xs, q: f"{pct(xs, q) * 1000:.1f}"  # noqa: E731
    rows = [
        ("/v1/info while 8 clients synthesize", ms(latencies, 50), ms(latencies, 99), f"{len(latencies)} requests"),
        ("first byte, /v1/synthesize stream, idle", ms(ttfb_synth, 50), ms(ttfb_synth, 99), "'Hello there.'"),
        ("first byte, /v1/audio/speech mp3, idle", ms(ttfb_openai, 50), ms(ttfb_openai, 99), "'Hello there.'"),
    ]
    rows.append(("say -o, cold (own model load)", ms(cold, 50), ms(cold, 99), "whole command, 'Hello there.'"))
    rows.append(("say -o, through the running server", ms(warm, 50), ms(warm, 99), "whole command, same text"))
    n = len(LINES)
    out = table("speakcli serve (Piper): latency", rows, ("what", "p50 ms", "p99 ms", "note"))
    rows2 = [
        (f"{CLIENTS} HTTP clients, {n} lines", f"{med(served):.2f}", f"{n / med(served):.1f}", "1.00"),
        (f"speakcli batch, {n} lines (incl. start)", f"{med(batched):.2f}", f"{n / med(batched):.1f}",
         f"{med(batched) / med(served):.2f}"),
    ]  # fmt: skip
    out += "\n" + table(
        f"speakcli serve (Piper): throughput, median of {runs} interleaved runs",
        rows2,
        ("how", "seconds", "lines/s", "time / server's"),
    )
    return out
