"""A real uvicorn server on loopback over a real service, started and stopped by the tests that use it."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speakcli.service import SpeechService
from speakcli.serving import Gateway, Limits
from speakcli.settings import load_settings
from speakcli.web.server import HttpServer
from speakcli.worker import Job


@dataclass
class Served:
    url: str
    gateway: Gateway
    jobs: list[Job[Any]] = field(default_factory=list)  # every job the gateway queued, in order

    @property
    def service(self) -> SpeechService:
        return self.gateway.service

    @contextmanager
    def worker_held(self) -> Iterator[threading.Event]:
        """Keep the one worker busy until the yielded event is set (or the block ends)."""
        gate, running = threading.Event(), threading.Event()

        def hold(engine: Any) -> list[None]:
            running.set()
            gate.wait(30)
            return []

        job = self.service.worker.submit(hold)
        assert running.wait(30), "the worker never took the holding job"
        try:
            yield gate
        finally:
            gate.set()
            list(job)


@contextmanager
def serving(
    flags: dict[str, Any] | None = None, limits: Limits | None = None, api_key: str | None = None
) -> Iterator[Served]:
    """Piper (zero noise, so identical text gives identical audio) unless `flags` pick another engine."""
    settings = load_settings({"engine": "piper", **(flags or {})})
    service = SpeechService(settings)
    if service.engine.name == "piper":
        service.engine.noise_scale = 0.0  # type: ignore[attr-defined]
        service.engine.noise_w_scale = 0.0  # type: ignore[attr-defined]
    gateway = Gateway(service, limits)
    served = Served("", gateway)
    real_speak = gateway.speak

    def spy(*args: Any, **kwargs: Any) -> Job[Any]:
        job = real_speak(*args, **kwargs)
        served.jobs.append(job)
        return job

    gateway.speak = spy  # type: ignore[method-assign]
    server = HttpServer(gateway, "127.0.0.1", 0, api_key=api_key)
    try:
        service.worker.call(lambda engine: None)  # loaded before the first request, as `speakcli serve` does
        server.start()
        served.url = server.url
        yield served
    finally:
        server.stop()
        gateway.close()


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
