"""Audio responses: a job's chunks read on the event loop without blocking it, encoded whole or as they come."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from speakcli.audio.encode import AudioFormat, StreamEncoder
from speakcli.serving import Gateway, SpeechRequest
from speakcli.serving.aio import AsyncSpeech


async def audio_response(
    gateway: Gateway, request: SpeechRequest, fmt: AudioFormat, client: Request, stream: bool
) -> Response:
    """The audio of `request` in `fmt`: sent as it is made (`stream`), or whole with its length known."""
    speech = AsyncSpeech(gateway, request)
    media_type = fmt.media_type
    if not stream or not fmt.streams:
        audio = await speech.whole(client.is_disconnected)
        encoder = StreamEncoder(fmt, speech.sample_rate)
        if fmt.name in ("wav", "flac"):  # whole files get exact headers
            from speakcli.audio.encode import encode

            data = encode(audio, speech.sample_rate, fmt)
        else:
            data = encoder.feed(audio) + encoder.finish()
        return Response(data, media_type=media_type)
    # Wait for the first chunk before answering, so a failure in the first sentence is still a JSON error.
    iterator = speech.chunks(client.is_disconnected)
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
