"""A real uvicorn server on loopback over a real service, started and stopped by the tests that use it."""

from __future__ import annotations

import asyncio
import io
import re
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import soundfile as sf

from speakcli import engines
from speakcli.engines import Engine
from speakcli.scheduling import CallTask
from speakcli.service import SpeechService
from speakcli.serving import Gateway, Limits, SpeechRequest
from speakcli.settings import load_settings
from speakcli.web.server import HttpServer, Timeouts
from speakcli.worker import Job


@dataclass
class Served:
    url: str
    gateway: Gateway
    jobs: list[Job[Any]] = field(default_factory=list)  # every job the gateway queued, in order
    requests: list[SpeechRequest] = field(default_factory=list)  # the request of each, in the same order
    queued: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))  # released per job queued
    answered: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))  # per audio answer begun
    server: HttpServer | None = None
    loop: asyncio.AbstractEventLoop | None = None  # the server's event loop, once it served a request

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """Block the server's event loop until the block ends: to its clients, a stopped (SIGSTOP) server that
        still accepts connections (the kernel does) and answers nothing."""
        assert self.loop is not None, "the server has not served a request yet"
        gate, blocked = threading.Event(), threading.Event()

        def block() -> None:
            blocked.set()
            gate.wait(120)

        self.loop.call_soon_threadsafe(block)
        assert blocked.wait(30), "the server's loop never ran the block"
        try:
            yield
        finally:
            gate.set()

    @property
    def service(self) -> SpeechService:
        return self.gateway.service

    @contextmanager
    def worker_held(self) -> Iterator[threading.Event]:
        """Keep the one worker busy until the yielded event is set (or the block ends)."""
        gate, running = threading.Event(), threading.Event()

        def hold(engine: Any) -> None:
            running.set()
            gate.wait(30)

        job = self.service.worker.submit(CallTask(hold))
        assert running.wait(30), "the worker never took the holding job"
        try:
            yield gate
        finally:
            gate.set()
            list(job)


@contextmanager
def serving(
    flags: dict[str, Any] | None = None,
    limits: Limits | None = None,
    api_key: str | None = None,
    timeouts: Timeouts | None = None,
    *,
    engine: Engine | None = None,
    identity: str | None = None,
    cors: Sequence[str] = (),
    private_lists: bool = False,
) -> Iterator[Served]:
    """Piper (zero noise, so identical text gives identical audio) unless `flags` pick another engine, or `engine`
    is one to serve (a `speakcli.testing.FakeEngine`); `identity` is the secret /v1/identity proves; `cors` and
    `private_lists` as `speakcli serve`'s options."""
    settings = load_settings({"engine": "piper", **(flags or {})})
    if engine is None:
        service = SpeechService(settings)
    else:
        with mock.patch.dict(engines._REGISTRY, {"fake": lambda spec: engine}):
            service = SpeechService(settings, engines.EngineSpec("fake"))
    if service.engine.name == "piper":
        service.engine.noise_scale = 0.0  # type: ignore[attr-defined]
        service.engine.noise_w_scale = 0.0  # type: ignore[attr-defined]
    gateway = Gateway(service, limits)
    served = Served("", gateway)
    real_speak = gateway.speak

    def spy(request: SpeechRequest, *args: Any, **kwargs: Any) -> Job[Any]:
        job = real_speak(request, *args, **kwargs)
        served.requests.append(request)
        served.jobs.append(job)
        served.queued.release()
        return job

    gateway.speak = spy  # type: ignore[method-assign]
    server = served.server = HttpServer(
        gateway,
        "127.0.0.1",
        0,
        api_key=api_key,
        cors=cors,
        timeouts=timeouts,
        identity=identity,
        private_lists=private_lists,
    )
    server.app.add_middleware(_Answered, served=served)
    try:
        service.load()  # loaded before the first request, as `speakcli serve` does
        server.start()
        served.url = server.url
        yield served
    finally:
        server.stop()
        gateway.close()


class _Answered:
    """Outermost ASGI layer: releases `served.answered` once an audio response's headers are on their way, so a
    test can act mid-stream (after the headers, before the end) in a known order."""

    def __init__(self, app: Any, served: Served) -> None:
        self.app = app
        self.served = served

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.served.loop = asyncio.get_running_loop()

        async def sent(message: Any) -> None:
            await send(message)
            headers = message.get("headers", ()) if message.get("type") == "http.response.start" else ()
            if any(k == b"content-type" and v.startswith(b"audio/") for k, v in headers):
                self.served.answered.release()

        await self.app(scope, receive, sent)


def decode(data: bytes) -> tuple[np.ndarray, int]:
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    return audio, int(rate)


def reference(flags: dict[str, Any] | None, text: str) -> np.ndarray:
    """`text` made alone, outside any server, as 16-bit PCM would carry it."""
    with SpeechService(load_settings({"engine": "piper", **(flags or {})})) as service:
        service.engine.noise_scale = 0.0  # type: ignore[attr-defined]
        service.engine.noise_w_scale = 0.0  # type: ignore[attr-defined]
        audio = np.concatenate(list(service.speak(text, service.voice(), service.options())))
    return np.round(np.clip(audio, -1, 1) * 32767).astype(np.int16)


def pcm_of_wav(data: bytes) -> np.ndarray:
    audio, _ = sf.read(io.BytesIO(data), dtype="int16")
    return np.asarray(audio)


def long_text(sentences: int = 30) -> str:
    return " ".join(f"This is sentence number {i}, which keeps the worker busy for a while." for i in range(sentences))


def write_clip(path: Path) -> Path:
    from speakcli.testing import speech_like_wav

    return speech_like_wav(path)


@contextmanager
def wyoming_serving(gateway: Gateway) -> Iterator[int]:
    """A Wyoming server over `gateway` on loopback port 0, on its own event loop thread; yields its port."""
    with wyoming_on_loop(gateway) as (port, _):
        yield port


@contextmanager
def wyoming_on_loop(gateway: Gateway) -> Iterator[tuple[int, asyncio.AbstractEventLoop]]:
    """`wyoming_serving`, yielding the server's event loop too."""
    from speakcli.wyoming_api.server import WyomingServer

    loop = asyncio.new_event_loop()
    # A daemon thread, so the loop's executor threads are daemons too; the loop is stopped and closed below.
    thread = threading.Thread(target=loop.run_forever, name="speakcli-test-wyoming", daemon=True)
    thread.start()
    server = WyomingServer(gateway, "tcp://127.0.0.1:0")
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(10)
        yield int(server.uri.rsplit(":", 1)[1]), loop
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


@contextmanager
def serve_addresses(*args: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], list[str]]]:
    """`speakcli serve ARGS` once it has announced every address; yields the process, the addresses
    by kind ("http", "wyoming") and the stderr lines read so far (more are added until it ends)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakcli", "serve", *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    lines: list[str] = []
    found: dict[str, str] = {}
    rest: threading.Thread | None = None
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append(line.rstrip("\n"))
            for name, pattern in (("wyoming", r"serving Wyoming on (tcp://\S+)"), ("http", r"serving on (http://\S+)")):
                match = re.search(pattern, line)
                if match:
                    found[name] = match.group(1)
            if "Ctrl-C to stop" in line:
                break
        assert found, f"no address announced: {lines}"
        rest = threading.Thread(target=lambda: lines.extend(ln.rstrip("\n") for ln in proc.stderr or ()))
        rest.start()
        yield proc, found, lines
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(30)
        if rest is not None:
            rest.join(10)


@contextmanager
def serve_process(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, list[str]]]:
    """`speakcli serve --port 0 ARGS` (HTTP only); yields the process, its URL and its stderr lines so far."""
    with serve_addresses("--port", "0", *args) as (proc, found, lines):
        assert "http" in found, f"no HTTP address announced: {lines}"
        yield proc, found["http"], lines
