"""speakcli's own routes under /v1: synthesize, clone, batch jobs, precompute, voices, info, health, identity."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from speakcli.adverts import proof
from speakcli.audio.encode import AudioFormat, audio_format
from speakcli.errors import LimitError, NotFoundError, UsageError
from speakcli.serving import SpeechRequest
from speakcli.web.access import Access, access
from speakcli.web.audio import audio_response
from speakcli.web.routing import gateway_of, read_upload, run_blocking

router = APIRouter(prefix="/v1")


class SynthesizeBody(BaseModel):
    text: str
    voice: str | None = None
    language: str | None = None
    speed: float | None = None
    temperature: float | None = None
    seed: int | None = None
    format: str = "wav"
    stream: bool = False


class BatchItemBody(BaseModel):
    text: str
    id: str | None = None
    voice: str | None = None
    language: str | None = None


class BatchBody(BaseModel):
    items: list[BatchItemBody] = Field(max_length=100_000)
    format: str = "wav"


class PrecomputeBody(BaseModel):
    voices: list[str] | None = None


def request_format(name: str) -> AudioFormat:
    try:
        return audio_format(name)
    except UsageError as exc:
        raise UsageError(str(exc), code="unsupported_format") from None


@router.post("/synthesize", response_model=None)
async def synthesize(body: SynthesizeBody, request: Request) -> Response:
    fmt = request_format(body.format)
    speech = SpeechRequest(body.text, body.voice, body.language, body.speed, body.temperature, body.seed)
    return await audio_response(gateway_of(request), speech, fmt, request, stream=body.stream)


@router.post("/clone-voice", status_code=201, response_model=None)
async def clone_voice(
    request: Request,
    name: Annotated[str, Form()],
    files: Annotated[list[UploadFile], File()],
    language: Annotated[str | None, Form()] = None,
    description: Annotated[str | None, Form()] = None,
    text: Annotated[str | None, Form()] = None,
) -> Response:
    gateway = gateway_of(request)
    limits = gateway.limits
    if len(files) > limits.max_clips:
        raise LimitError(f"{len(files)} clips sent; the limit is {limits.max_clips}")
    if text is not None:
        gateway.check_text(text)
    uploads = [await read_upload(f, limits.max_upload_bytes) for f in files]
    # Cloning waits for the worker: run it on a thread so the event loop keeps answering.
    result = await run_blocking(gateway.clone, uploads, name, language, description)
    if text is not None:
        return await audio_response(gateway, SpeechRequest(text, name, language), request_format("wav"), request, False)
    voice = result.voice
    return JSONResponse(
        {
            "name": voice.name,
            "clips": [c.name for c in voice.clips],
            "language": voice.language,
            "description": voice.meta.get("description"),
            "reference_seconds": round(result.reference_seconds, 2),
            "latents": result.latents,
            "warnings": result.warnings,
        },
        status_code=201,
    )


@router.post("/batch-synthesize", status_code=202)
async def batch_synthesize(body: BatchBody, request: Request) -> JSONResponse:
    gateway = gateway_of(request)
    fmt = request_format(body.format)
    requests = [(i.id, SpeechRequest(i.text, i.voice, i.language)) for i in body.items]
    # Checking 10,000 items takes a while: off the event loop.
    job = await asyncio.to_thread(gateway.batches.submit, requests, fmt)
    return JSONResponse({"job": job.id, "status": job.status, "url": f"/v1/jobs/{job.id}"}, status_code=202)


@router.get("/jobs/{job_id}")
async def job_status(job_id: str, request: Request) -> dict[str, Any]:
    job = gateway_of(request).batches.get(job_id)
    snap = job.snapshot()
    for item in snap["items"]:
        if item["status"] == "done":
            item["url"] = f"/v1/jobs/{job.id}/items/{item['id']}"
    return snap


@router.get("/jobs/{job_id}/items/{item_id}", response_model=None)
async def job_item(job_id: str, item_id: str, request: Request) -> Response:
    job = gateway_of(request).batches.get(job_id)
    item = job.item(item_id)
    if item.status != "done" or item.file is None:
        raise NotFoundError(f"item {item_id!r} of job {job_id} is {item.status}, not done")
    return FileResponse(item.file, media_type=job.format.media_type)


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, request: Request) -> dict[str, Any]:
    job = gateway_of(request).batches.cancel(job_id)
    return {"job": job.id, "status": job.status}


@router.post("/precompute-embeddings")
async def precompute(request: Request, body: PrecomputeBody | None = None) -> dict[str, Any]:
    gateway = gateway_of(request)
    names = body.voices if body is not None else None
    results = await run_blocking(gateway.precompute, names)
    return {"voices": [{"voice": r.voice, "status": r.status, "detail": r.detail} for r in results]}


@router.get("/voices")
@access(Access.LISTING)
async def voices(request: Request) -> dict[str, Any]:
    rows = await asyncio.to_thread(gateway_of(request).voices)
    return {
        "voices": [
            {
                "name": r.name,
                "language": r.language,
                "description": r.description,
                "clips": r.clips,
                "seconds": r.seconds,
                "cached": r.cached,
                **({"error": r.error} if r.error else {}),
            }
            for r in rows
        ]
    }


@router.get("/info")
async def info(request: Request) -> dict[str, Any]:
    return gateway_of(request).info()


@router.get("/health")
@access(Access.OPEN)
async def health(request: Request) -> dict[str, Any]:
    gateway = gateway_of(request)
    return {"status": "stopping" if gateway.closing else "ok"}


@router.get("/identity")
@access(Access.OPEN)
async def identity(request: Request, nonce: str) -> dict[str, str]:
    """Proof that this is the server the advert names: HMAC of the client's nonce under the advert's secret."""
    secret: str | None = request.app.state.identity
    if secret is None:
        raise NotFoundError("this server wrote no advert, so it has no identity to prove")
    if not 16 <= len(nonce) <= 128 or nonce.strip("0123456789abcdef"):
        raise UsageError("nonce: send 16 to 128 lowercase hex digits")
    return {"proof": proof(secret, nonce)}
