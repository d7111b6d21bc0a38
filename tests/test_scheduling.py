"""The scheduler seen from the front ends: a short request is answered while a long one is still being made."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import Synthesize

from serve_helpers import Served, decode, long_text, serving, wyoming_serving

pytestmark = pytest.mark.slow


@pytest.fixture(params=["piper", "tiny-xtts"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    flags: dict[str, Any] = {}
    if request.param == "tiny-xtts":
        pytest.importorskip("TTS")
        folder: Path = request.getfixturevalue("tiny_xtts_dir")
        flags = {"engine": "xtts", "model_dir": folder, "device": "cpu", "precision": "int8"}
    with serving(flags) as s:
        yield s


def _long_stream(url: str, text: str, first: threading.Event, stop: threading.Event) -> None:
    """Stream `text` until `stop`: `first` is set once its first audio (past the WAV header) has arrived."""
    with (
        httpx.Client(base_url=url, timeout=120) as c,
        c.stream("POST", "/v1/synthesize", json={"text": text, "stream": True}) as r,
    ):
        got = 0
        for chunk in r.iter_bytes():
            got += len(chunk)
            if got > 44:
                first.set()
            if stop.is_set():
                return


def test_over_http_a_short_request_is_answered_while_a_long_one_streams(served: Served) -> None:
    first, stop = threading.Event(), threading.Event()
    streaming = threading.Thread(target=_long_stream, args=(served.url, long_text(12), first, stop))
    streaming.start()
    try:
        assert first.wait(120), "the long request never streamed"
        long_job = served.jobs[0]
        with httpx.Client(base_url=served.url, timeout=120) as c:
            r = c.post("/v1/synthesize", json={"text": "Is the door locked?"})
        assert r.status_code == 200 and len(decode(r.content)[0]) > 0
        assert not long_job.done.is_set(), "the short request waited for the whole long one"
    finally:
        stop.set()
        streaming.join(120)


def test_over_wyoming_a_short_request_is_answered_while_a_long_one_is_spoken(served: Served) -> None:
    async def scenario(port: int) -> bool:
        async with (
            AsyncTcpClient("127.0.0.1", port, read_timeout=120) as long_client,
            AsyncTcpClient("127.0.0.1", port, read_timeout=120) as short_client,
        ):
            await long_client.write_event(Synthesize(text=long_text(12)).event())
            while (event := await long_client.read_event()) is not None and event.type != "audio-chunk":
                pass
            long_job = served.jobs[0]
            await short_client.write_event(Synthesize(text="Is the door locked?").event())
            while (event := await short_client.read_event()) is not None and event.type != "audio-stop":
                pass
            return not long_job.done.is_set()

    with wyoming_serving(served.gateway) as port:
        assert asyncio.run(asyncio.wait_for(scenario(port), 240)), "the short request waited for the long one"


def test_info_reports_the_running_servers_scheduler(capsys: pytest.CaptureFixture[str]) -> None:
    """`speakcli info --json` on a machine with a matching `speakcli serve` shows that server's scheduler."""
    import json

    from serve_helpers import serve_process
    from speakcli.cli import main

    assert main(["info", "--json", "--engine", "piper"]) == 0
    assert json.loads(capsys.readouterr().out)["server"] is None  # none running yet
    with serve_process("--engine", "piper") as (_proc, url, _lines):
        assert main(["info", "--json", "--engine", "piper"]) == 0
        server = json.loads(capsys.readouterr().out)["server"]
    assert server["url"] == url
    assert {"active", "waiting", "interactive", "background", "max_batch", "batch_in_use"} <= set(server["scheduler"])
    assert server["scheduler"]["max_batch"] == 1  # Piper is interleaved, not batched
