"""xtts-api-server's routes, which SillyTavern's "XTTSv2" provider speaks; `speaker_wav` is a voice name only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from speakcli.audio.encode import AUDIO_FORMATS
from speakcli.language_names import language_name
from speakcli.serving import Gateway
from speakcli.serving.xtts_api_settings import APPLIED, XttsApiDefaults
from speakcli.web.access import Access, access
from speakcli.web.audio import audio_response
from speakcli.web.routing import gateway_of

router = APIRouter()


class TtsBody(BaseModel):
    text: str
    speaker_wav: str | None = None
    language: str | None = None


class TtsSettingsBody(BaseModel):
    """xtts-api-server's settings; one left out keeps its value (SillyTavern sends them all, numbers as strings)."""

    speed: float | None = None
    temperature: float | None = None
    length_penalty: float | None = None
    repetition_penalty: float | None = None
    top_k: int | None = None
    top_p: float | None = None
    enable_text_splitting: bool | None = None
    stream_chunk_size: int | None = None


def _voice(speaker_wav: str | None) -> str | None:
    # SillyTavern sends the name it listed, sometimes with the clip's extension (as xtts-api-server's listing had).
    if not speaker_wav:
        return None
    suffix = Path(speaker_wav).suffix.lower()
    return speaker_wav[: -len(suffix)] if suffix in (".wav", ".mp3", ".flac", ".ogg") else speaker_wav


def xtts_defaults(request: Request) -> XttsApiDefaults:
    defaults: XttsApiDefaults = request.app.state.xtts_api
    return defaults


def _speakers(gateway: Gateway, base: str, key: str | None) -> list[dict[str, str]]:
    # A page plays each preview from its URL, which cannot carry a header: for a client that proved the key,
    # the URL carries it.
    query = f"?api_key={quote(key, safe='')}" if key else ""
    names = gateway.voice_names()
    return [{"name": n, "voice_id": n, "preview_url": f"{base}v1/voices/{quote(n)}/sample{query}"} for n in names]


@router.get("/speakers")
@access(Access.LISTING)
async def speakers(request: Request) -> list[dict[str, str]]:
    key = getattr(request.state, "api_key", None)
    return await asyncio.to_thread(_speakers, gateway_of(request), str(request.base_url), key)


@router.get("/speakers_list")
@access(Access.LISTING)
async def speakers_list(request: Request) -> list[str]:
    return await asyncio.to_thread(gateway_of(request).voice_names)


@router.get("/languages")
@access(Access.LISTING)
async def languages(request: Request) -> dict[str, Any]:
    # xtts-api-server answers with display names, each naming the code to send.
    codes = gateway_of(request).languages()
    return {"languages": {language_name(c): c for c in codes}}


@router.post("/set_tts_settings")
async def set_tts_settings(body: TtsSettingsBody, request: Request) -> dict[str, Any]:
    changes = body.model_dump(exclude_none=True)
    settings = xtts_defaults(request).update(changes)
    kept = [name for name in changes if name not in APPLIED]
    message = "Settings successfully applied"
    if kept:
        message += (
            f" (speakcli uses {', '.join(APPLIED)}; {', '.join(kept)} are kept, not used: length_penalty affects only"
            " beam search, which XTTS's sampling does not do, and speakcli always splits text and streams in its"
            " own chunks)"
        )
    return {"message": message, "settings": settings.as_dict()}


@router.get("/get_tts_settings")
async def get_tts_settings(request: Request) -> dict[str, Any]:
    return xtts_defaults(request).current.as_dict()


@router.post("/tts_to_audio/", response_model=None)
async def tts_to_audio(body: TtsBody, request: Request) -> Response:
    gateway = gateway_of(request)
    speech = xtts_defaults(request).current.request(body.text, _voice(body.speaker_wav), body.language)
    return await audio_response(gateway, speech, AUDIO_FORMATS["wav"], request, stream=False)


# SillyTavern asks for /tts_stream/ (with the slash): both are served, rather than redirected.
@router.get("/tts_stream", response_model=None)
@router.get("/tts_stream/", response_model=None, include_in_schema=False)
@access(Access.LINK)
async def tts_stream(
    request: Request, text: str, speaker_wav: str | None = None, language: str | None = None
) -> Response:
    gateway = gateway_of(request)
    speech = xtts_defaults(request).current.request(text, _voice(speaker_wav), language)
    return await audio_response(gateway, speech, AUDIO_FORMATS["wav"], request, stream=True)


@router.get("/v1/voices/{name}/sample", response_model=None)
@access(Access.LINK)
async def voice_sample(name: str, request: Request) -> Response:
    path = gateway_of(request).voice_sample(name)
    return FileResponse(path, filename=path.name)
