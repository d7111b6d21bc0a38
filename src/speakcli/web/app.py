"""The FastAPI app: the three dialects' routes over one gateway, JSON errors, the API key and CORS."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from speakcli import __version__
from speakcli.errors import BusyError, SpeakError
from speakcli.serving import Gateway

log = logging.getLogger("speakcli")

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
_OPEN_PATHS = {"/v1/health"}  # answered without the API key, for load balancers and systemd checks


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape every route uses: {"error": {"code", "message"}}, the message on one line."""
    return JSONResponse(
        {"error": {"code": code, "message": " ".join(message.split())}}, status_code=status, headers=headers
    )


def _speak_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, SpeakError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, BusyError) else None
    return error_response(_STATUS.get(exc.code, 500), exc.code, str(exc), headers)


def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        problems.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return error_response(400, "invalid_input", "; ".join(problems))


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(exc.status_code, "http_error")
    return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))


def _unexpected(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
    log.debug("traceback", exc_info=exc)
    return error_response(500, "internal", "the server failed on this request; its log says why")


def create_app(gateway: Gateway, api_key: str | None = None, cors: Sequence[str] = ()) -> FastAPI:
    """The HTTP API over `gateway`: speakcli's own routes, OpenAI's speech API and xtts-api-server's."""
    from speakcli.web import openai_api, seed, xtts_api

    app = FastAPI(title="speakcli", version=__version__, docs_url="/docs", redoc_url=None)
    app.state.gateway = gateway
    app.add_exception_handler(SpeakError, _speak_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

    if api_key:
        expected = f"Bearer {api_key}".encode()

        @app.middleware("http")
        async def _require_key(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            if request.method == "OPTIONS" or request.url.path in _OPEN_PATHS:
                return await call_next(request)
            given = request.headers.get("authorization", "").encode()
            if not secrets.compare_digest(given, expected):
                return error_response(
                    401, "unauthorized", "missing or wrong API key; send Authorization: Bearer KEY",
                    {"WWW-Authenticate": "Bearer"},
                )  # fmt: skip
            return await call_next(request)

    upload_limit = gateway.limits.max_clips * gateway.limits.max_upload_bytes + 64 * 1024  # + form overhead

    @app.middleware("http")
    async def _limit_uploads(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # Refused before the body is read: the multipart parser would otherwise spool any size to disk.
        if request.method == "POST" and request.url.path == "/v1/clone-voice":
            length = request.headers.get("content-length")
            if length is None or not length.isdigit():
                return error_response(411, "length_required", "send the upload with a Content-Length header")
            if int(length) > upload_limit:
                return error_response(413, "too_large", f"the upload is larger than {upload_limit} bytes")
        return await call_next(request)

    if cors:
        # Added last so it runs first: browsers' preflight requests carry no API key.
        app.add_middleware(
            CORSMiddleware, allow_origins=list(cors), allow_methods=["*"], allow_headers=["*"], max_age=600
        )
    app.include_router(seed.router)
    app.include_router(openai_api.router)
    app.include_router(xtts_api.router)
    return app


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway
