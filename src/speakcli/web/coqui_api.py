"""coqui's xtts-streaming-server API, which pipecat's XTTS service speaks: voices as latents, speech from them."""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import replace
from typing import Any, TypeVar

from fastapi import APIRouter, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from speakcli import jsontext
from speakcli.audio.encode import AUDIO_FORMATS
from speakcli.errors import UsageError
from speakcli.serving import Gateway, SpeechRequest
from speakcli.speakers import latents_from_json, latents_to_json
from speakcli.web.access import Access, access
from speakcli.web.audio import audio_response, whole_audio
from speakcli.web.errors import problems
from speakcli.web.routing import gateway_of, read_upload, run_blocking

# Served at the root (pipecat's base_url is the server) and under /coqui, where /languages answers in coqui's
# shape too: at the root that path is xtts-api-server's, whose clients (SillyTavern) read another shape.
PREFIX = "/coqui"

# coqui's server sends 24 kHz 16-bit mono whatever it is asked (pipecat labels the PCM 24 kHz): so does this.
_WAV = replace(AUDIO_FORMATS["wav"], rate=24000)
_PCM = replace(AUDIO_FORMATS["pcm"], rate=24000)
MAX_CHUNK_CODES = 1000

Body = TypeVar("Body", bound="TtsBody")


class TtsBody(BaseModel):
    text: str
    language: str | None = None  # coqui's needs it; here the server's language when left out
    # Checked by speakcli.speakers (numbers only, a rectangle, size, finite), not by the model's shape here.
    gpt_cond_latent: Any = None
    speaker_embedding: Any = None
    voice: str | None = None  # speakcli's: a voice by name, in place of latents


class StreamBody(TtsBody):
    add_wav_header: bool = True
    stream_chunk_size: int | str = "20"  # coqui's GPT codes per chunk; speakcli streams 20 at a time


def _parse(raw: bytes, model: type[Body]) -> tuple[Body, SpeechRequest]:
    """The request's body as `model` and the speech it asks for; off the event loop (latents are 33,000 numbers)."""
    try:
        data = jsontext.loads(raw)
    except ValueError as exc:
        raise UsageError(f"the body is not JSON ({exc})") from None
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise UsageError(problems(exc.errors())) from None
    if isinstance(body, StreamBody):
        size = body.stream_chunk_size
        if isinstance(size, bool) or not str(size).isdigit() or not 1 <= int(size) <= MAX_CHUNK_CODES:
            raise UsageError(f"stream_chunk_size must be a whole number from 1 to {MAX_CHUNK_CODES}")
    latents = None
    if body.gpt_cond_latent is not None or body.speaker_embedding is not None:
        latents = latents_from_json(body.gpt_cond_latent, body.speaker_embedding)
    return body, SpeechRequest(body.text, body.voice, body.language, latents=latents)


async def _read(request: Request, model: type[Body]) -> tuple[Body, SpeechRequest]:
    return await asyncio.to_thread(_parse, await request.body(), model)  # the guard bounds the body's size


def _json(data: Any) -> Response:
    return Response(json.dumps(data), media_type="application/json")


def _speakers(gateway: Gateway) -> Response:
    return _json({name: latents_to_json(latents) for name, latents in gateway.studio_speakers().items()})


async def studio_speakers(request: Request) -> Response:
    """Every voice a client may send back as latents: {name: {speaker_embedding, gpt_cond_latent}}."""
    return await run_blocking(_speakers, gateway_of(request))


async def clone_speaker(request: Request, wav_file: UploadFile) -> Response:
    """A reference clip's latents, as coqui's server gives them; nothing is saved (see /v1/clone-voice)."""
    gateway = gateway_of(request)
    upload = await read_upload(wav_file, gateway.limits.max_upload_bytes)
    latents = await run_blocking(gateway.reference_latents, upload)
    return await asyncio.to_thread(lambda: _json(latents_to_json(latents)))


async def tts_stream(request: Request) -> Response:
    """WAV header then 24 kHz PCM as it is made, or bare PCM with `add_wav_header: false` (pipecat)."""
    body, speech = await _read(request, StreamBody)
    fmt = _WAV if body.add_wav_header else _PCM
    return await audio_response(gateway_of(request), speech, fmt, request, stream=True)


async def tts(request: Request) -> Response:
    """The whole WAV, base64 in a JSON string, as coqui's server answers."""
    _, speech = await _read(request, TtsBody)
    wav = await whole_audio(gateway_of(request), speech, _WAV, request)
    return await asyncio.to_thread(lambda: _json(base64.b64encode(wav).decode("ascii")))


@access(Access.LISTING)
async def languages(request: Request) -> list[str]:
    """The language codes as the model's config names them (coqui's `zh-cn`)."""
    return ["zh-cn" if code == "zh" else code for code in gateway_of(request).languages()]


def _router(prefix: str) -> APIRouter:
    """The dialect's routes under `prefix`, each carrying its full path (the guard and CORS match on it).

    /studio_speakers needs the key like synthesis: it hands out the latents of saved voices, with which anyone
    can speak in that voice."""
    router = APIRouter(prefix=prefix)
    router.add_api_route("/studio_speakers", studio_speakers, methods=["GET"], response_model=None)
    router.add_api_route("/clone_speaker", clone_speaker, methods=["POST"], response_model=None)
    router.add_api_route("/tts_stream", tts_stream, methods=["POST"], response_model=None)
    router.add_api_route("/tts", tts, methods=["POST"], response_model=None)
    if prefix:
        router.add_api_route("/languages", languages, methods=["GET"])
    return router


router = _router("")
prefixed = _router(PREFIX)
