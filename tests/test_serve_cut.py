"""Streams a server cannot finish: cut so that every HTTP client sees it, or refused before any header."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from serve_helpers import Served, serving
from speakcli.testing import FakeEngine

TEXT = "One. Two. Three."


@contextmanager
def stepped() -> Iterator[tuple[Served, FakeEngine, threading.Semaphore]]:
    """A server over a fake engine that makes one sentence per permit released."""
    steps = threading.Semaphore(0)
    engine = FakeEngine(steps=steps, max_chars=8)
    with serving(engine=engine) as served:
        yield served, engine, steps


def test_a_finished_stream_ends_with_its_last_chunk() -> None:
    with stepped() as (served, engine, steps), httpx.Client(base_url=served.url, timeout=30) as client:
        steps.release(3)
        r = client.post("/v1/synthesize", json={"text": TEXT, "stream": True})
        assert r.status_code == 200 and engine.spoken == ["One.", "Two.", "Three."]
        assert len(r.content) == 44 + 2 * (4 + 200 + 4 + 200 + 6)  # three sentences, two pauses, 16-bit


@pytest.mark.parametrize("how", ["shutdown", "failure"])
def test_a_stream_cut_after_its_headers_ends_without_its_last_chunk(how: str) -> None:
    text = TEXT if how == "shutdown" else "One. FAIL. Three."
    with stepped() as (served, engine, steps), httpx.Client(base_url=served.url, timeout=30) as client:
        steps.release()  # the first sentence only
        with client.stream("POST", "/v1/synthesize", json={"text": text, "stream": True}) as r:
            assert served.answered.acquire(timeout=30) and r.status_code == 200
            if how == "shutdown":
                served.gateway.stop_accepting()  # what SIGTERM does first: cancel every job
            steps.release(3)
            with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                r.read()
        assert engine.spoken[0] == "One." and "Three." not in engine.spoken


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/synthesize", {"text": TEXT, "stream": True}),
        ("/v1/audio/speech", {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "mp3"}),
        ("/v1/audio/speech", {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"}),
    ],
)
def test_a_streamed_request_still_queued_at_shutdown_is_refused_before_any_header(
    path: str, body: dict[str, Any]
) -> None:
    with stepped() as (served, engine, steps), httpx.Client(base_url=served.url, timeout=30) as client:
        steps.release(10)
        got: list[httpx.Response] = []
        with served.worker_held():
            asking = threading.Thread(target=lambda: got.append(client.post(path, json=body)))
            asking.start()
            assert served.queued.acquire(timeout=30)  # queued behind the job that holds the worker
            served.gateway.stop_accepting()
        asking.join(30)
    assert got[0].status_code == 503 and got[0].headers["retry-after"] == "5"
    assert got[0].json()["error"]["code"] == "busy" and engine.texts == []


@pytest.mark.slow
def test_a_request_unanswered_when_the_shutdown_grace_ends_gets_a_503() -> None:
    # A long sentence in progress outlasts uvicorn's grace for open requests (5 s); it then cancels them.
    with stepped() as (served, _, steps), httpx.Client(base_url=served.url, timeout=60) as client:
        steps.release(10)
        got: list[httpx.Response] = []
        with served.worker_held():
            asking = threading.Thread(target=lambda: got.append(client.post("/v1/synthesize", json={"text": TEXT})))
            asking.start()
            assert served.queued.acquire(timeout=30)
            assert served.server is not None
            served.server.request_stop()
            asking.join(60)  # answered while the worker is still held: by the shutdown, not by the job
            assert got and got[0].status_code == 503 and got[0].headers["retry-after"] == "5"
