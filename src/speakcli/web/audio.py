"""Audio responses: a job's chunks read on the event loop without blocking it, encoded whole or as they come."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from speakcli.audio.encode import AudioFormat, StreamEncoder
from speakcli.serving import Gateway, SpeechRequest
from speakcli.worker import Job

# How often a waiting response looks for a client that went away while the worker is still on its job.
_DISCONNECT_POLL_SECONDS = 0.25


class Speech:
    """One request's job on the worker, with a wake-up the worker thread sets on the event loop."""

    def __init__(self, gateway: Gateway, request: SpeechRequest) -> None:
        loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
                loop.call_soon_threadsafe(self._event.set)

        self.job: Job[np.ndarray] = gateway.speak(request, notify)
        self.sample_rate = gateway.service.sample_rate

    async def chunks(self, client: Request) -> AsyncGenerator[np.ndarray, None]:
        """The audio as the worker makes it; a client that disconnects cancels the job."""
        try:
            while True:
                self._event.clear()  # before take(): an item put after it sets the event again
                items, ended = self.job.take()
                for item in items:
                    yield item
                if ended:
                    return
                try:
                    await asyncio.wait_for(self._event.wait(), _DISCONNECT_POLL_SECONDS)
                except asyncio.TimeoutError:
                    if await client.is_disconnected():
                        return
        finally:
            if not self.job.done.is_set():
                self.job.cancel()  # the worker stops after the sentence in progress; nobody gets its audio

    async def whole(self, client: Request) -> np.ndarray:
        parts = [chunk async for chunk in self.chunks(client)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)


async def audio_response(
    gateway: Gateway, request: SpeechRequest, fmt: AudioFormat, client: Request, stream: bool
) -> Response:
    """The audio of `request` in `fmt`: sent as it is made (`stream`), or whole with its length known."""
    speech = Speech(gateway, request)
    media_type = fmt.media_type
    if not stream or not fmt.streams:
        audio = await speech.whole(client)
        encoder = StreamEncoder(fmt, speech.sample_rate)
        if fmt.name in ("wav", "flac"):  # whole files get exact headers
            from speakcli.audio.encode import encode

            data = encode(audio, speech.sample_rate, fmt)
        else:
            data = encoder.feed(audio) + encoder.finish()
        return Response(data, media_type=media_type)
    # Wait for the first chunk before answering, so a failure in the first sentence is still a JSON error.
    iterator = speech.chunks(client)
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = np.zeros(0, np.float32)
    encoder = StreamEncoder(fmt, speech.sample_rate)

    async def body() -> AsyncIterator[bytes]:
        try:
            data = encoder.feed(first)
            if data:
                yield data
            async for chunk in iterator:
                data = encoder.feed(chunk)
                if data:
                    yield data
            yield encoder.finish()
        finally:
            await iterator.aclose()

    return StreamingResponse(body(), media_type=media_type)
