"""OpenAI's speech API (/v1/audio/speech) as Open WebUI, SillyTavern and the OpenAI SDKs call it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from speakcli.audio.encode import AUDIO_FORMATS, available
from speakcli.errors import UsageError
from speakcli.serving import Gateway, SpeechRequest
from speakcli.web.access import Access, access
from speakcli.web.audio import audio_response
from speakcli.web.routing import gateway_of

router = APIRouter(prefix="/v1")

# OpenAI's voices: each speaks with the default voice unless the library has a voice of that name.
OPENAI_VOICES = (
    "alloy", "ash", "ballad", "cedar", "coral", "echo", "fable", "marin", "nova", "onyx", "sage", "shimmer", "verse"
)  # fmt: skip
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "speakcli")
# OpenAI's pcm is 24 kHz 16-bit mono little-endian, whatever rate the engine makes.
_FORMATS = {**AUDIO_FORMATS, "pcm": replace(AUDIO_FORMATS["pcm"], rate=24000)}


class SpeechBody(BaseModel):
    model: str = "tts-1"
    input: str
    voice: str | dict[str, Any] = "alloy"
    response_format: str = "mp3"
    speed: float = Field(default=1.0)
    instructions: str | None = None  # accepted; no engine here takes style instructions
    stream_format: str | None = None


def _voice_name(gateway: Gateway, voice: str | dict[str, Any]) -> str | None:
    name = voice.get("id") if isinstance(voice, dict) else voice
    if not isinstance(name, str) or not name:
        raise UsageError("voice must be a voice name")
    if name.lower() in OPENAI_VOICES and not gateway.is_saved_voice(name):
        return None  # the server's default voice
    return name


@router.post("/audio/speech", response_model=None)
async def speech(body: SpeechBody, request: Request) -> Response:
    gateway = gateway_of(request)
    fmt = _FORMATS.get(body.response_format.lower())
    if fmt is None:
        raise UsageError(
            f"response_format {body.response_format!r} is unknown; use mp3, opus, aac, flac, wav or pcm",
            code="unsupported_format",
        )
    available(fmt)  # aac needs PyAV: a 400 saying what to install, before any synthesis
    if body.stream_format not in (None, "audio"):
        raise UsageError("stream_format 'sse' is not supported; leave it out or use 'audio'", code="unsupported_format")
    speech_request = SpeechRequest(body.input, _voice_name(gateway, body.voice), None, body.speed)
    # Every format but FLAC and WAV streams as it is made. WAV is sent whole, so its header carries its true
    # length (a streamed one cannot know it, and readers such as Python's `wave` then see 27 hours); a client
    # that asks for `stream_format: "audio"` gets it streamed with an open-ended header.
    stream = fmt.name != "wav" or body.stream_format == "audio"
    return await audio_response(gateway, speech_request, fmt, request, stream=stream)


def _voice_list(gateway: Gateway) -> list[dict[str, str]]:
    names = gateway.voice_names()
    return [{"id": n, "name": n} for n in [*names, *(v for v in OPENAI_VOICES if v not in names)]]


@router.get("/audio/voices")
@access(Access.LISTING)
async def voices(request: Request) -> dict[str, Any]:
    return {"voices": await asyncio.to_thread(_voice_list, gateway_of(request))}


@router.get("/audio/models")
@access(Access.LISTING)
async def audio_models() -> dict[str, Any]:
    return {"models": [{"id": m} for m in MODELS]}


@router.get("/models")
@access(Access.LISTING)
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": m, "object": "model", "owned_by": "speakcli"} for m in MODELS]}
