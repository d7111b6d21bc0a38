"""Wyoming as Home Assistant speaks it, with the wyoming package's own client, against a real server on loopback."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from wyoming.audio import AudioChunk, AudioStart
from wyoming.client import AsyncTcpClient, AsyncUnixClient
from wyoming.event import Event, Eventable
from wyoming.info import Describe, Info
from wyoming.ping import Ping
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeVoice

from serve_helpers import (
    Served,
    long_text,
    reference,
    serve_addresses,
    serving,
    write_clip,
    wyoming_on_loop,
    wyoming_serving,
)
from speakcli.engines.base import SynthesisOptions
from speakcli.serving import Limits, SpeechRequest, Upload
from speakcli.streamtext import QUIET_SECONDS
from speakcli.wyoming_api.server import WyomingServer

pytestmark = pytest.mark.slow

T = TypeVar("T")
READ_TIMEOUT = 30.0


@dataclass
class Wyoming:
    served: Served
    port: int

    def client(self) -> AsyncTcpClient:
        return AsyncTcpClient("127.0.0.1", self.port, connect_timeout=10, read_timeout=READ_TIMEOUT)


@pytest.fixture(scope="module")
def wyoming() -> Iterator[Wyoming]:
    # HTTP and Wyoming on the one gateway, as `speakcli serve --wyoming` runs them.
    with serving() as served, wyoming_serving(served.gateway) as port:
        yield Wyoming(served, port)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 120))


@dataclass
class Reply:
    """What a client read: every event in order, and the audio of its chunks as 16-bit samples."""

    events: list[Event] = field(default_factory=list)

    @property
    def types(self) -> list[str]:
        return [e.type for e in self.events]

    @property
    def pcm(self) -> np.ndarray:
        data = b"".join(AudioChunk.from_event(e).audio for e in self.events if AudioChunk.is_type(e.type))
        return np.frombuffer(data, "<i2")


async def read_until(client: AsyncTcpClient, last: str, reply: Reply | None = None) -> Reply:
    reply = reply or Reply()
    while True:
        event = await client.read_event()
        assert event is not None, f"the server closed the connection after {reply.types[-5:]}"
        reply.events.append(event)
        if event.type == last:
            return reply


async def error_for(client: AsyncTcpClient, event: Eventable | Event | bytes) -> dict[str, Any]:
    if isinstance(event, Eventable):
        event = event.event()
    if isinstance(event, bytes):
        writer = client._writer
        assert writer is not None
        writer.write(event)
        await writer.drain()
    else:
        await client.write_event(event)
    reply = await read_until(client, "error")
    assert reply.types == ["error"], reply.types
    return reply.events[-1].data


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- describe ---------------------------------------------------------------------------------------------------


def test_describe_lists_one_tts_program_with_every_voice_and_streaming(wyoming: Wyoming) -> None:
    async def scenario() -> Info:
        async with wyoming.client() as client:
            await client.write_event(Describe().event())
            reply = await read_until(client, "info")
            return Info.from_event(reply.events[-1])

    info = run(scenario)
    assert len(info.tts) == 1
    program = info.tts[0]
    assert program.installed and program.supports_synthesize_streaming
    gateway = wyoming.served.gateway
    assert [v.name for v in program.voices] == gateway.voice_names() == ["joe"]
    joe = program.voices[0]
    assert joe.languages == ["en"] and joe.installed
    # Home Assistant's picker shows `description or name` (its wyoming/tts.py): the name, not voice.toml's text.
    assert (joe.description or joe.name) == "joe"
    assert gateway.voices()[0].description  # joe has a description, which the picker does not show


# -- synthesize -------------------------------------------------------------------------------------------------


def test_synthesize_gives_the_same_audio_as_speaking_alone(wyoming: Wyoming) -> None:
    text = "Hello from Home Assistant. The second sentence follows."

    async def scenario() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text=text, voice=SynthesizeVoice(name="joe")).event())
            return await read_until(client, "audio-stop")

    reply = run(scenario)
    assert reply.types[0] == "audio-start" and reply.types[-1] == "audio-stop"
    assert set(reply.types[1:-1]) == {"audio-chunk"}
    start = AudioStart.from_event(reply.events[0])
    assert (start.rate, start.width, start.channels) == (22050, 2, 1)
    audio = reply.pcm.astype(np.float32) / 32767
    assert 2.0 < len(audio) / start.rate < 8.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # speech, not silence
    assert np.array_equal(reply.pcm, reference(None, text))


def test_synthesize_sends_the_first_audio_before_the_whole_text_is_made(wyoming: Wyoming) -> None:
    async def scenario() -> bool:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text=long_text(12)).event())
            await read_until(client, "audio-chunk")
            return wyoming.served.jobs[-1].done.is_set()  # then it leaves, which cancels the rest

    assert not run(scenario), "the first audio came only after the whole text was made"


# -- the streaming form -----------------------------------------------------------------------------------------


def test_streamed_text_is_spoken_sentence_by_sentence_before_the_stream_stops(wyoming: Wyoming) -> None:
    pieces = ["The first sentence ", "arrives in pieces. ", "The sec", "ond one ", "ends the message."]
    whole = "".join(pieces)

    jobs = wyoming.served.jobs
    before = len(jobs)

    async def scenario() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="joe")).event())
            for piece in pieces[:3]:  # the first sentence is complete once the second begins
                await client.write_event(SynthesizeChunk(text=piece).event())
            reply = await read_until(client, "audio-chunk")  # before synthesize-stop is sent
            assert reply.types == ["audio-start", "audio-chunk"]
            for piece in pieces[3:]:
                await client.write_event(SynthesizeChunk(text=piece).event())
            # Home Assistant repeats the whole text in a plain synthesize for older servers: not spoken twice.
            await client.write_event(Synthesize(text=whole).event())
            await client.write_event(SynthesizeStop().event())
            reply = await read_until(client, "synthesize-stopped", reply)
            # A job for the repeated text would have been queued as synthesize-stopped was written.
            assert len(jobs) - before == 2, "expected one job per sentence (the second completes at the stop)"
            return reply

    reply = run(scenario)
    assert reply.types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert reply.types.count("audio-start") == 1
    assert np.array_equal(reply.pcm, reference(None, whole))


def test_a_sentence_is_spoken_when_the_text_pauses_before_the_next_one_begins(wyoming: Wyoming) -> None:
    first, second = "The first sentence is complete. ", "The second one follows."

    async def scenario() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text=first).event())
            # Nothing more is sent until its audio comes: it must not wait for the next sentence to begin.
            reply = await read_until(client, "audio-chunk")
            await client.write_event(SynthesizeChunk(text=second).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped", reply)

    reply = run(scenario)
    assert reply.types.count("audio-start") == 1 and "error" not in reply.types
    assert np.array_equal(reply.pcm, reference(None, first + second))


SSML_PIECES = [
    "<?xml version='1.0'?>\n<speak>Hello there. ",
    "How are you? ",
    "<break time='300ms'/>",
    " Fine, <prosody rate='slow'>thank you</prosody>.",
    "</speak>",
]


def test_ssml_streamed_at_a_human_pace_is_spoken_whole_as_ssml(wyoming: Wyoming) -> None:
    async def scenario() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(SynthesizeStart().event())
            for piece in SSML_PIECES:
                await client.write_event(SynthesizeChunk(text=piece).event())
                await asyncio.sleep(QUIET_SECONDS * 1.5)  # a person's pace: each pause would end a plain sentence
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    reply = run(scenario)
    assert "error" not in reply.types, reply.events
    assert np.array_equal(reply.pcm, reference(None, "".join(SSML_PIECES)))  # as the document sent at once


def test_a_stream_with_an_unknown_voice_gets_an_error_and_is_still_answered_at_its_stop(wyoming: Wyoming) -> None:
    async def scenario() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(SynthesizeStart(voice=SynthesizeVoice(name="nobody")).event())
            await client.write_event(SynthesizeChunk(text="Never spoken. At all.").event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    reply = run(scenario)
    assert reply.types == ["error", "synthesize-stopped"]  # no audio, and no client left waiting
    assert reply.events[0].data["code"] == "voice"


# -- many clients, one worker -----------------------------------------------------------------------------------


def test_two_clients_at_once_each_get_only_their_own_audio(wyoming: Wyoming) -> None:
    texts = ["The first client asks for this sentence.", "The other client wants different words spoken."]

    async def one(text: str, streaming: bool) -> Reply:
        async with wyoming.client() as client:
            if streaming:
                await client.write_event(SynthesizeStart().event())
                for word in text.split(" "):
                    await client.write_event(SynthesizeChunk(text=word + " ").event())
                await client.write_event(SynthesizeStop().event())
                return await read_until(client, "synthesize-stopped")
            await client.write_event(Synthesize(text=text).event())
            return await read_until(client, "audio-stop")

    async def scenario() -> list[Reply]:
        gateway = wyoming.served.gateway
        with wyoming.served.worker_held() as release:  # both are queued before either is made
            tasks = [asyncio.ensure_future(one(texts[0], False)), asyncio.ensure_future(one(texts[1], True))]
            await asyncio.to_thread(wait_for, lambda: gateway.waiting == 2)
            release.set()
            return list(await asyncio.gather(*tasks))

    first, second = run(scenario)
    assert np.array_equal(first.pcm, reference(None, texts[0]))
    assert np.array_equal(second.pcm, reference(None, texts[1]))


def test_a_client_that_disconnects_mid_stream_cancels_its_job_and_frees_the_worker(wyoming: Wyoming) -> None:
    sentences = 30

    async def leave_early() -> None:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text=long_text(sentences)).event())
            await read_until(client, "audio-chunk")

    run(leave_early)
    job = wyoming.served.jobs[-1]
    wait_for(job.done.is_set)
    assert job.cancelled
    assert job.items < sentences  # it stopped after the sentence in progress

    async def next_client() -> Reply:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text="Next, please.").event())
            return await read_until(client, "audio-stop")

    assert np.array_equal(run(next_client).pcm, reference(None, "Next, please."))


def test_a_client_that_leaves_while_queued_is_never_spoken(wyoming: Wyoming) -> None:
    jobs = wyoming.served.jobs
    before = len(jobs)

    async def queue_and_leave() -> None:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text="Nobody will hear this.").event())
            await asyncio.to_thread(wait_for, lambda: len(jobs) > before)

    with wyoming.served.worker_held():
        run(queue_and_leave)
        job = jobs[-1]
        wait_for(lambda: job.cancelled)  # cancelled while it waits, not once the worker reaches it
        assert not job.started.is_set()
    wait_for(job.done.is_set)
    assert job.items == 0


def test_a_full_queue_is_an_error_that_says_to_retry() -> None:
    with (
        serving(limits=Limits(max_queue=1)) as served,
        wyoming_serving(served.gateway) as port,
        served.worker_held() as release,
    ):

        async def scenario() -> dict[str, Any]:
            first = AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT)
            second = AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT)
            async with first, second:
                await first.write_event(Synthesize(text="I take the one place.").event())
                await asyncio.to_thread(wait_for, lambda: served.gateway.waiting == 1)
                error = await error_for(second, Synthesize(text="No room for me."))
                release.set()
                await read_until(first, "audio-stop")  # the one admitted is still made
                return error

        error = run(scenario)
    assert error["code"] == "busy" and "try again" in error["text"]


def test_streamed_text_past_its_bounds_is_too_large_and_the_stream_is_still_answered() -> None:
    limits = Limits(max_text=100)  # so 1,600 characters may wait, and streamed SSML is at most 100

    async def too_much(port: int, release: threading.Event) -> tuple[Reply, Reply]:
        async with AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT) as client:
            await client.write_event(SynthesizeStart().event())
            await client.write_event(SynthesizeChunk(text="Is this spoken? ").event())  # a certain end: at once
            for _ in range(600):  # until it is handed to the worker (which is held), before the flood
                if served.jobs:
                    break
                await asyncio.sleep(0.05)
            assert served.jobs, "the first sentence never reached the gateway"
            for _ in range(20):  # 2,000 characters while the worker is busy with the first sentence
                await client.write_event(SynthesizeChunk(text="word " * 20).event())
            await client.write_event(SynthesizeStop().event())
            refused = await read_until(client, "error")  # at once, while the worker is still held
            release.set()
            return refused, await read_until(client, "synthesize-stopped")

    async def ssml(port: int) -> Reply:
        async with AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT) as client:
            await client.write_event(SynthesizeStart().event())
            for piece in ["<speak>", "word " * 30, "</speak>"]:
                await client.write_event(SynthesizeChunk(text=piece).event())
            await client.write_event(SynthesizeStop().event())
            return await read_until(client, "synthesize-stopped")

    with serving(limits=limits) as served, wyoming_serving(served.gateway) as port:
        with served.worker_held() as release:
            refused, spoken = run(lambda: too_much(port, release))
        long_ssml = run(lambda: ssml(port))
    assert refused.types == ["error"] and refused.events[0].data["code"] == "too_large", refused.events
    assert "1600 characters" in refused.events[0].data["text"]
    # What was already handed to the worker is spoken; the rest is dropped, and the stream is answered at its stop.
    assert spoken.types[0] == "audio-start" and spoken.types[-2:] == ["audio-stop", "synthesize-stopped"]
    assert "error" not in spoken.types
    assert long_ssml.types == ["error", "synthesize-stopped"] and long_ssml.events[0].data["code"] == "too_large"


def test_a_text_past_the_limit_is_refused_at_once_not_when_its_turn_comes(wyoming: Wyoming) -> None:
    async def scenario() -> tuple[dict[str, Any], Reply]:
        async with wyoming.client() as client:
            await client.write_event(Synthesize(text="First in line.").event())
            error = await error_for(client, Synthesize(text="word " * 13_000))  # while the first still waits
            release.set()
            return error, await read_until(client, "audio-stop")

    with wyoming.served.worker_held() as release:
        error, reply = run(scenario)
    assert error["code"] == "too_large" and "4096" in error["text"], error
    assert np.array_equal(reply.pcm, reference(None, "First in line."))


def test_requests_waiting_on_one_connection_are_bounded() -> None:
    with (
        serving(limits=Limits(max_queue=2)) as served,
        wyoming_serving(served.gateway) as port,
        served.worker_held() as release,
    ):

        async def scenario() -> tuple[dict[str, Any], Reply]:
            async with AsyncTcpClient("127.0.0.1", port, read_timeout=READ_TIMEOUT) as client:
                for text in ["One.", "Two."]:
                    await client.write_event(Synthesize(text=text).event())
                error = await error_for(client, Synthesize(text="Three."))
                release.set()
                reply = await read_until(client, "audio-stop")
                return error, await read_until(client, "audio-stop", reply)

        error, reply = run(scenario)
    assert error["code"] == "busy" and "2 requests waiting" in error["text"], error
    assert reply.types.count("audio-stop") == 2 and "error" not in reply.types


def test_a_flood_of_chunks_and_huge_texts_leaves_the_event_loop_free() -> None:
    """The loop that serves Wyoming (and HTTP, in `speakcli serve`) keeps answering while one client streams
    13,000 tiny chunks and another sends 40 texts of 65,000 characters: a probe on it is never held up long."""
    lags: list[float] = []

    async def probe(stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            before = loop.time()
            await asyncio.sleep(0.01)
            lags.append(loop.time() - before - 0.01)

    async def flood(port: int) -> list[str]:
        streamer = AsyncTcpClient("127.0.0.1", port, read_timeout=120)
        sender = AsyncTcpClient("127.0.0.1", port, read_timeout=120)
        async with streamer, sender:
            await streamer.write_event(SynthesizeStart().event())
            for i in range(10_000):
                await streamer.write_event(SynthesizeChunk(text="word "[i % 5]).event())
            for _ in range(3_000):
                await streamer.write_event(SynthesizeChunk(text="word ").event())
            huge = Synthesize(text="word " * 13_000).event()
            for _ in range(40):
                await sender.write_event(huge)
            codes = [(await read_until(sender, "error")).events[-1].data["code"] for _ in range(40)]
            await streamer.write_event(Ping(text="after the flood").event())
            await read_until(streamer, "pong")  # every chunk before it was read and queued
            return codes

    with serving() as served, wyoming_on_loop(served.gateway) as (port, loop), served.worker_held():
        stop = asyncio.Event()
        probing = asyncio.run_coroutine_threadsafe(probe(stop), loop)
        try:
            codes = run(lambda: flood(port))
        finally:
            loop.call_soon_threadsafe(stop.set)
            probing.result(30)
    assert codes == ["too_large"] * 40
    # Generous: the old code held the loop for seconds at a time (every chunk re-segmented the open text on it).
    assert len(lags) > 10 and max(lags) < 1.0, f"the loop was held up {max(lags):.2f} s"


# -- bad events -------------------------------------------------------------------------------------------------

BAD_EVENTS: list[tuple[Eventable | Event | bytes, str]] = [
    (Event("transcribe"), "unknown_event"),
    (b"this is not json\n", "invalid_event"),
    (b'["a", "list"]\n', "invalid_event"),
    (b"[" * 5000 + b"\n", "invalid_event"),  # nested past the JSON parser's recursion limit
    (b'{"type": "synthesize", "data_length": 5}\nnope!', "invalid_event"),
    (Event("synthesize", {"text": 42}), "invalid_input"),
    (Event("synthesize", {}), "invalid_input"),
    (Event("synthesize", {"text": "Hi.", "voice": "joe"}), "invalid_input"),
    (Synthesize(text="   "), "empty_text"),
    (Synthesize(text="... !!!"), "nothing_to_say"),
    (Synthesize(text="Hi.", voice=SynthesizeVoice(name="nobody")), "voice"),
    (Synthesize(text="Hi.", voice=SynthesizeVoice(name="../../etc/passwd")), "voice"),
    (Synthesize(text="Hi.", voice=SynthesizeVoice(language="xx")), "unknown_language"),
    (SynthesizeChunk(text="No stream is open."), "invalid_input"),
    (SynthesizeStop(), "invalid_input"),
    (Synthesize(text="word " * 13_000), "too_large"),  # past --max-text (4,096), as over HTTP
    # Past the data or payload limit, or a header line past the reader's: skipped, and the next event is read.
    (b'{"type": "synthesize", "data_length": 2000000}\n' + b"x" * 2_000_000, "invalid_event"),
    (b'{"type": "audio-chunk", "payload_length": 5000000}\n' + bytes(5_000_000), "invalid_event"),
    (b'{"type": "synthesize", "data": {"text": "' + b"a" * 200_000 + b'"}}\n', "invalid_event"),
]


def test_bad_events_get_an_error_and_the_connection_lives_on(wyoming: Wyoming) -> None:
    async def scenario() -> list[str]:
        async with wyoming.client() as client:
            codes = [(await error_for(client, event))["code"] for event, _ in BAD_EVENTS]
            await client.write_event(Ping(text="in step?").event())
            assert (await read_until(client, "pong")).types == ["pong"]  # one error per bad event, no more
            await client.write_event(Synthesize(text="Still here.").event())
            reply = await read_until(client, "audio-stop")
            assert np.array_equal(reply.pcm, reference(None, "Still here."))
            return codes

    assert run(scenario) == [code for _, code in BAD_EVENTS]


@pytest.mark.parametrize(
    "header",
    [
        b'{"type": "synthesize", "data_length": "many"}\n',
        b'{"type": "synthesize", "data_length": -1}\n',
        b'{"type": "synthesize", "payload_length": 1000000000000}\n',  # far past anything worth skipping
    ],
)
def test_a_length_that_cannot_be_followed_gets_an_error_then_the_connection_closes(
    wyoming: Wyoming, header: bytes
) -> None:
    async def scenario() -> tuple[dict[str, Any], Event | None]:
        async with wyoming.client() as client:
            error = await error_for(client, header)
            return error, await client.read_event()

    error, after = run(scenario)
    assert error["code"] == "invalid_event" and "clos" in error["text"], error
    assert after is None  # where the next event would start is unknown: the server closed the connection


@pytest.mark.parametrize("path", ["/etc/passwd", "../voices/joe", "voices/joe/reference.wav"])
def test_a_voice_that_is_a_path_is_refused_as_a_path(wyoming: Wyoming, path: str) -> None:
    before = len(wyoming.served.jobs)

    async def scenario() -> dict[str, Any]:
        async with wyoming.client() as client:
            return await error_for(client, Synthesize(text="Hi.", voice=SynthesizeVoice(name=path)))

    error = run(scenario)
    assert error["code"] == "voice" and "is not allowed" in error["text"], error  # a name only, never a file
    assert len(wyoming.served.jobs) == before


def test_a_unix_socket_serves_the_same_protocol(tmp_path: Path) -> None:
    path = tmp_path / "speakcli.sock"

    async def scenario(served: Served) -> Reply:
        server = WyomingServer(served.gateway, f"unix://{path}")
        await server.start()
        try:
            async with AsyncUnixClient(path, read_timeout=READ_TIMEOUT) as client:
                await client.write_event(Describe().event())
                await read_until(client, "info")
                await client.write_event(Synthesize(text="Over a socket file.").event())
                return await read_until(client, "audio-stop")
        finally:
            await server.stop()

    with serving() as served:
        reply = run(lambda: scenario(served))
    assert np.array_equal(reply.pcm, reference(None, "Over a socket file."))


@pytest.mark.xtts
def test_a_cloned_xtts_voice_is_listed_under_its_language_and_speaks_it(tiny_xtts_dir: Path, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "me.wav")
    with serving({"engine": "xtts", "model_dir": tiny_xtts_dir}) as served, wyoming_serving(served.gateway) as port:
        served.gateway.clone([Upload("me.wav", clip.read_bytes())], "me", language="de")
        asked: list[str | None] = []
        options = served.gateway.options

        def spy(request: SpeechRequest) -> SynthesisOptions:
            asked.append(request.language)
            return options(request)

        served.gateway.options = spy  # type: ignore[method-assign]

        async def scenario() -> tuple[Info, Reply]:
            async with AsyncTcpClient("127.0.0.1", port, read_timeout=120) as client:
                await client.write_event(Describe().event())
                info = Info.from_event((await read_until(client, "info")).events[-1])
                await client.write_event(Synthesize(text="Guten Tag.", voice=SynthesizeVoice(name="me")).event())
                return info, await read_until(client, "audio-stop")

        info, reply = run(scenario)
    voices = {v.name: v.languages for v in info.tts[0].voices}
    assert voices["me"] == ["de"] and voices["joe"] == ["en"]  # each under its voice.toml language
    assert asked and set(asked) == {"de"}  # Home Assistant sends only the name: the voice speaks its language
    assert AudioStart.from_event(reply.events[0]).rate == 24000 and len(reply.pcm) > 0


# -- `speakcli serve --wyoming` ---------------------------------------------------------------------------------


async def describe_at(uri: str) -> Info:
    host, port = uri.removeprefix("tcp://").rsplit(":", 1)
    async with AsyncTcpClient(host, int(port), read_timeout=READ_TIMEOUT) as client:
        await client.write_event(Describe().event())
        return Info.from_event((await read_until(client, "info")).events[-1])


def test_serve_runs_wyoming_beside_http_in_one_process_and_stops_on_sigterm() -> None:
    with serve_addresses("--engine", "piper", "--port", "0", "--wyoming", "tcp://127.0.0.1:0") as (proc, found, lines):
        assert re.fullmatch(r"tcp://127\.0\.0\.1:\d+", found["wyoming"]) and not found["wyoming"].endswith(":0")
        assert [v.name for v in run(lambda: describe_at(found["wyoming"])).tts[0].voices] == ["joe"]
        assert httpx.get(found["http"] + "/v1/health", timeout=30).json() == {"status": "ok"}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert lines[-1] == "speakcli: stopped"
    assert not any("Traceback" in ln or "warning" in ln for ln in lines), lines


def test_serve_wyoming_alone_warns_beyond_loopback_and_stops_on_sigterm() -> None:
    with serve_addresses("--engine", "piper", "--no-http", "--wyoming", "tcp://0.0.0.0:0") as (proc, found, lines):
        assert "http" not in found
        uri = found["wyoming"].replace("0.0.0.0", "127.0.0.1")
        assert run(lambda: describe_at(uri)).tts[0].supports_synthesize_streaming
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert any("Wyoming on 0.0.0.0 has no authentication" in ln for ln in lines), lines
    assert lines[-1] == "speakcli: stopped"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--no-http"], "--no-http leaves nothing to serve"),
        (["--wyoming", "http://127.0.0.1:10200"], "is not tcp://HOST:PORT or unix://PATH"),
        (["--wyoming", "tcp://127.0.0.1"], "is not tcp://HOST:PORT or unix://PATH"),
        (["--wyoming", "tcp://127.0.0.1:99999"], "the port must be 0 to 65535"),
    ],
)
def test_serve_refuses_a_bad_wyoming_address_before_loading(args: list[str], says: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "speakcli", "serve", *args], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and says in result.stderr, result.stderr
    assert "loading" not in result.stderr
