"""Audio responses: a job's chunks read on the event loop without blocking it, encoded whole or as they come."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from speakcli.audio.encode import AudioFormat, StreamEncoder, encode
from speakcli.errors import BusyError, SpeakError
from speakcli.serving import Gateway, SpeechRequest
from speakcli.serving.aio import AsyncSpeech
from speakcli.web.guard import StreamCut

log = logging.getLogger("speakcli")


async def whole_audio(gateway: Gateway, request: SpeechRequest, fmt: AudioFormat, client: Request) -> bytes:
    """The audio of `request` as one file in `fmt`, once all of it is made."""
    return await _whole(AsyncSpeech(gateway, request), gateway, fmt, client)


async def _whole(speech: AsyncSpeech, gateway: Gateway, fmt: AudioFormat, client: Request) -> bytes:
    audio = await speech.whole(client.is_disconnected)
    if speech.job.cancelled and gateway.closing:
        # Cut short by shutdown: a whole file must not be silently partial.
        raise BusyError("the server is shutting down; send the request again", retry_after=5)
    # Encoding a long text takes seconds: off the event loop, which must keep answering.
    return await asyncio.to_thread(encode, audio, speech.sample_rate, fmt)


async def audio_response(
    gateway: Gateway, request: SpeechRequest, fmt: AudioFormat, client: Request, stream: bool
) -> Response:
    """The audio of `request` in `fmt`: sent as it is made (`stream`), or whole with its length known."""
    speech = AsyncSpeech(gateway, request)
    media_type = fmt.media_type
    if not stream or not fmt.streams:
        return Response(await _whole(speech, gateway, fmt, client), media_type=media_type)
    # Wait for the first chunk before answering, so a failure in the first sentence is still a JSON error.
    iterator = speech.chunks(client.is_disconnected)
    try:
        first = await iterator.__anext__()
    except StopAsyncIteration:
        first = np.zeros(0, np.float32)
    if speech.job.cancelled and not speech.finished:
        # Cut (by shutdown) before any byte went out: refused, as a request that arrives now is, never a 200
        # with less audio than asked for.
        await iterator.aclose()
        raise BusyError("the server is shutting down; send the request again", retry_after=5)
    encoder = StreamEncoder(fmt, speech.sample_rate)

    async def body() -> AsyncIterator[bytes]:
        # A stream the job did not finish ends without its last chunk (see StreamCut): every HTTP client then
        # sees an incomplete transfer, never a shorter file that looks whole.
        try:
            data = await asyncio.to_thread(encoder.feed, first)
            if data:
                yield data
            async for chunk in iterator:
                data = await asyncio.to_thread(encoder.feed, chunk)
                if data:
                    yield data
            if not speech.finished:
                raise StreamCut("the job was cancelled (the server is stopping, or the client left)")
            yield await asyncio.to_thread(encoder.finish)
        except SpeakError as exc:
            log.warning("a streamed response failed after its first audio (%s); its connection is cut", exc)
            raise StreamCut(str(exc)) from None
        finally:
            await iterator.aclose()

    return StreamingResponse(body(), media_type=media_type)
