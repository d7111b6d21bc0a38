"""The FastAPI app: the dialects' routes over one gateway, JSON errors, the API key and CORS."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route

from speakcli import __version__
from speakcli.errors import BusyError, SpeakError
from speakcli.serving import Gateway
from speakcli.serving.xtts_api_settings import XttsApiDefaults
from speakcli.web import coqui_api, openai_api, seed, xtts_api
from speakcli.web.access import KeyCheck, RouteTable
from speakcli.web.cors import Cors, CorsPolicy
from speakcli.web.errors import error_body, problems
from speakcli.web.guard import BodyTooLarge, Guard

log = logging.getLogger("speakcli")

# Every dialect's routes.
ROUTERS = (seed.router, openai_api.router, xtts_api.router, coqui_api.router, coqui_api.prefixed)

# Core error codes to HTTP statuses; anything not named is a server-side failure (500).
_STATUS = {
    "invalid_input": 400,
    "empty_text": 400,
    "nothing_to_say": 400,
    "unknown_language": 400,
    "voice": 400,
    "cannot_clone": 400,
    "unsupported_format": 400,
    "too_large": 413,
    "not_found": 404,
    "conflict": 409,
    "busy": 503,
}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error as a route answers it, in the one shape (`error_body`)."""
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def _speak_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpeakError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, BusyError) else None
    return error_response(_STATUS.get(exc.code, 500), exc.code, str(exc), headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, "invalid_input", problems(exc.errors()))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc.__cause__, BodyTooLarge):  # FastAPI turns any failure while reading a body into a 400
        return error_response(413, "too_large", str(exc.__cause__))
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


def create_app(
    gateway: Gateway,
    api_key: str | None = None,
    cors: Sequence[str] = (),
    identity: str | None = None,
    private_lists: bool = False,
    loopback_only: bool = False,
) -> FastAPI:
    """The HTTP API over `gateway`: speakcli's own routes, OpenAI's speech API, xtts-api-server's and coqui's
    xtts-streaming-server's.

    `cors`: origins whose pages may call it besides the loopback host's ('*': any; a bad one raises `UsageError`).
    `private_lists`: with `api_key`, the listings need the key too. `identity` is the secret of the server's
    advert, which /v1/identity proves knowing (None: no advert). `loopback_only`: it listens on loopback, so it
    answers only requests that name the loopback host (see `Cors`)."""
    policy = CorsPolicy(cors)
    app = FastAPI(title="speakcli", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.gateway = gateway
    app.state.identity = identity
    app.state.xtts_api = XttsApiDefaults.of(gateway)  # what /set_tts_settings sets, for this server
    app.add_exception_handler(SpeakError, _speak_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for router in ROUTERS:
        app.include_router(router)
    limits = gateway.limits
    upload_limit = limits.max_clips * limits.max_upload_bytes + 64 * 1024  # + the form's own overhead
    text_limit = 4 * limits.max_text + 64 * 1024  # UTF-8 is at most 4 bytes a character; + the other fields
    batch_limit = min(64 * 1024 * 1024, limits.max_batch_items * (4 * limits.max_text + 256))

    # coqui's API sends a speaker's latents with every request: 33,000 numbers for XTTS v2, about 0.8 MB of JSON.
    latents_limit = 4 * 1024 * 1024 + text_limit

    def limit_for(path: str) -> int:
        if path == "/v1/clone-voice":
            return upload_limit
        if path.removeprefix(coqui_api.PREFIX) == "/clone_speaker":
            return limits.max_upload_bytes + 64 * 1024
        if path.removeprefix(coqui_api.PREFIX) in ("/tts", "/tts_stream"):
            return latents_limit
        return batch_limit if path == "/v1/batch-synthesize" else text_limit

    # The app's own routes (/docs) and the dialects': each router's routes carry their full paths and marks.
    routes = RouteTable(
        [*(r for r in app.router.routes if isinstance(r, Route)), *(r for x in ROUTERS for r in x.routes)]
    )
    keys = KeyCheck(api_key, private_lists) if api_key else None
    app.add_middleware(Guard, keys=keys, routes=routes, limit_for=limit_for)
    # Added last so it runs first: browsers' preflight requests carry no API key.
    app.add_middleware(Cors, policy=policy, routes=routes, loopback_only=loopback_only)
    return app
