"""The HTTP app's outer guard, as plain ASGI: the API key, body size limits, and unexpected errors as JSON."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from speakcli.web.access import Access, KeyCheck, RouteTable, take_query_key
from speakcli.web.errors import error_body

log = logging.getLogger("speakcli")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# Clip uploads: refused unless they say their length, so one is never read far past its limit.
UPLOAD_PATHS = {"/v1/clone-voice", "/clone_speaker", "/coqui/clone_speaker"}


class BodyTooLarge(Exception):
    pass


class StreamCut(Exception):
    """A response whose headers went out cannot be finished: its connection is closed without the end, so the
    client sees an incomplete transfer (HTTP/1.1 chunked: no last chunk) rather than a shorter whole."""


# What uvicorn logs when a response is left unfinished; the guard only leaves one so on purpose, and says why.
UNFINISHED = "ASGI callable returned without completing response."


async def send_error(send: Send, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
    body = json.dumps(error_body(code, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """Wraps the app. Plain ASGI rather than Starlette's BaseHTTPMiddleware, under which a request handler can no
    longer see its client disconnect (and so could not cancel its job).

    - With `keys`, a route needs the key as its mark says (`speakcli.web.access`): in the Authorization header,
      or on a `LINK` route also as `?api_key=`. `api_key` is taken out of every query string before the app sees
      it; a request that proved the key has it in `request.state.api_key` (to put in the links it answers).
    - A body past `limit_for(path)` bytes is refused with 413: at once from its Content-Length, or as soon as
      that many bytes arrived when it is sent in chunks. Clip uploads must say their length.
    - An exception no handler turned into a response becomes a JSON 500 and one log line, not a traceback; after
      the headers went out (and on `StreamCut`) the response is left unfinished, so uvicorn cuts the connection.
    - A request still unanswered when uvicorn's shutdown grace ends (it cancels the request) gets a 503 with
      Retry-After, as every request refused during a shutdown.
    """

    def __init__(
        self, app: ASGIApp, keys: KeyCheck | None, routes: RouteTable, limit_for: Callable[[str], int]
    ) -> None:
        self.app = app
        self.keys = keys
        self.routes = routes
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        scope = dict(scope)  # the query string may change below: the server's scope stays as it came
        in_query = take_query_key(scope)
        if self.keys is not None and scope.get("method") != "OPTIONS":
            kind = self.routes.access(scope)
            proved = self.keys.in_header(headers.get("authorization", b"")) or (
                kind is Access.LINK and in_query is not None and self.keys.in_query(in_query)
            )
            if proved:
                scope.setdefault("state", {})["api_key"] = self.keys.key
            elif self.keys.needed(kind):
                where = "Authorization: Bearer KEY" + (" or ?api_key=KEY" if kind is Access.LINK else "")
                await send_error(
                    send, 401, "unauthorized", f"missing or wrong API key; send {where}", {"WWW-Authenticate": "Bearer"}
                )
                return
        limit = self.limit_for(path)
        length = headers.get("content-length")
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            if length is not None and (not length.isdigit() or int(length) > limit):
                await send_error(send, 413, "too_large", f"the request body is larger than {limit} bytes")
                return
            if length is None and path in UPLOAD_PATHS:
                await send_error(send, 411, "length_required", "send the upload with a Content-Length header")
                return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message.get("type") == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"the request body is larger than {limit} bytes")
            return message

        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            if message.get("type") == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except StreamCut:
            log.debug("%s %s: the stream was cut", scope.get("method"), path)
        except asyncio.CancelledError:
            if not started:
                await send_error(
                    send, 503, "busy", "the server is shutting down; send the request again", {"Retry-After": "5"}
                )
        except BodyTooLarge:
            if not started:
                await send_error(send, 413, "too_large", f"the request body is larger than {limit} bytes")
        except Exception as exc:
            log.error("unexpected error on %s %s: %s: %s", scope.get("method"), path, type(exc).__name__, exc)
            log.debug("traceback", exc_info=exc)
            if not started:
                await send_error(send, 500, "internal", "the server failed on this request; its log says why")
