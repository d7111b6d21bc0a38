"""xtts-api-server's routes, which SillyTavern's "XTTSv2" provider speaks; `speaker_wav` is a voice name only."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel

from speakcli.audio.encode import AUDIO_FORMATS
from speakcli.language_names import language_name
from speakcli.serving import Gateway, SpeechRequest
from speakcli.web.audio import audio_response
from speakcli.web.routing import gateway_of

router = APIRouter()


class TtsBody(BaseModel):
    text: str
    speaker_wav: str | None = None
    language: str | None = None


class TtsSettingsBody(BaseModel):
    model_config = {"extra": "allow"}


def _voice(speaker_wav: str | None) -> str | None:
    # SillyTavern sends the name it listed, sometimes with the clip's extension (as xtts-api-server's listing had).
    if not speaker_wav:
        return None
    suffix = Path(speaker_wav).suffix.lower()
    return speaker_wav[: -len(suffix)] if suffix in (".wav", ".mp3", ".flac", ".ogg") else speaker_wav


def _speakers(gateway: Gateway, base: str) -> list[dict[str, str]]:
    return [{"name": n, "voice_id": n, "preview_url": f"{base}v1/voices/{n}/sample"} for n in gateway.voice_names()]


@router.get("/speakers")
async def speakers(request: Request) -> list[dict[str, str]]:
    return await asyncio.to_thread(_speakers, gateway_of(request), str(request.base_url))


@router.get("/speakers_list")
async def speakers_list(request: Request) -> list[str]:
    return await asyncio.to_thread(gateway_of(request).voice_names)


@router.get("/languages")
async def languages(request: Request) -> dict[str, Any]:
    # xtts-api-server answers with display names, each naming the code to send.
    codes = gateway_of(request).service.engine.languages()
    return {"languages": {language_name(c): c for c in codes}}


@router.post("/set_tts_settings")
async def set_tts_settings(body: TtsSettingsBody) -> dict[str, str]:
    # Settings are per request here (speed, temperature on /v1/synthesize); accepted so SillyTavern carries on.
    return {"message": "Settings accepted; speakcli takes speed and temperature per request"}


@router.post("/tts_to_audio/", response_model=None)
async def tts_to_audio(body: TtsBody, request: Request) -> Response:
    speech = SpeechRequest(body.text, _voice(body.speaker_wav), body.language)
    return await audio_response(gateway_of(request), speech, AUDIO_FORMATS["wav"], request, stream=False)


@router.get("/tts_stream", response_model=None)
async def tts_stream(
    request: Request, text: str, speaker_wav: str | None = None, language: str | None = None
) -> Response:
    speech = SpeechRequest(text, _voice(speaker_wav), language)
    return await audio_response(gateway_of(request), speech, AUDIO_FORMATS["wav"], request, stream=True)


@router.get("/v1/voices/{name}/sample", response_model=None)
async def voice_sample(name: str, request: Request) -> Response:
    path = gateway_of(request).voice_sample(name)
    return FileResponse(path, filename=path.name)
