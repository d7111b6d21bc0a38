"""CORS as plain ASGI: which web pages may call the server from a browser, and OPTIONS for every route that exists."""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from speakcli.errors import UsageError
from speakcli.serving.net import is_loopback
from speakcli.web.access import RouteTable
from speakcli.web.guard import ASGIApp, Message, Receive, Scope, Send, send_error

# A preflight's answer is cached this long by the browser (Chrome caps it at 2 hours).
MAX_AGE_SECONDS = 600
# Response headers a page's script may read besides the safelisted ones (busy: Retry-After; 401; a file's name).
_EXPOSED = b"Retry-After, WWW-Authenticate, Content-Disposition"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(value: str) -> str:
    """An origin as a browser's `Origin` header has it (scheme://host[:port], lowercase, no default port), or a
    `UsageError` saying what to give; '*' stays '*'."""
    value = value.strip()
    if value == "*":
        return value
    problem = f"--cors {value!r} is not a web origin; give scheme://host[:port] (as https://chat.example.org) or '*'"
    try:
        parts = urlsplit(value[:-1] if value.endswith("/") else value)
        port = parts.port
    except ValueError:
        raise UsageError(problem) from None
    host = parts.hostname
    if parts.scheme not in _DEFAULT_PORTS or not host or parts.path or parts.query or parts.fragment or parts.username:
        raise UsageError(problem)
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{shown}" + ("" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}")


def is_loopback_origin(origin: str) -> bool:
    """Whether a page's origin is on this machine's loopback host (localhost, 127.x.x.x, [::1]), any port."""
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return False
    return parts.scheme in _DEFAULT_PORTS and parts.hostname is not None and is_loopback(parts.hostname)


class CorsPolicy:
    """The pages a server answers: those on the loopback host always (a SillyTavern on this machine works with no
    flags), the origins it was given, or every one with '*'."""

    def __init__(self, origins: Sequence[str] = ()) -> None:
        parsed = {parse_origin(o) for o in origins}
        self.any = "*" in parsed
        self.origins = parsed - {"*"}

    def allows(self, origin: str) -> bool:
        if self.any or is_loopback_origin(origin):
            return True
        try:
            return parse_origin(origin) in self.origins
        except UsageError:
            return False  # "null" (a file:// page, a sandboxed frame) or worse


def host_name(host: str) -> str | None:
    """The name in a `Host` header ("localhost:8020", "[::1]:8020"), lowercase; None when it is malformed."""
    try:
        parts = urlsplit("//" + host.strip())
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        return None
    return parts.hostname


class Cors:
    """Outermost layer, so a browser's preflight (which carries no API key) is answered before the guard.

    - With `loopback_only` (a server listening on a loopback address), a request whose `Host` names anything
      but the loopback host gets a JSON `403`: a page that points its own DNS name at 127.0.0.1 (DNS rebinding)
      is same-origin with the server in the browser's eyes, so only the name it must use tells it apart.

    - `OPTIONS` on a path some route has is answered `204` with the methods the routes there take (`Allow`);
      for a preflight also the CORS headers: that origin, those methods, the headers it asked to send (a route
      ignores headers it does not read). An unknown path goes on to the app (a JSON 404).
    - A request whose `Origin` the policy refuses gets a JSON `403` saying which `--cors` would allow it. A
      request with no `Origin` (no browser page: curl, SDKs, `<audio src>`), or from the server's own origin
      (its /docs page), is not a cross-origin one and passes as it is.
    - Answers to an allowed page carry `Access-Control-Allow-Origin`, so its script may read them.
    """

    def __init__(self, app: ASGIApp, policy: CorsPolicy, routes: RouteTable, loopback_only: bool = False) -> None:
        self.app = app
        self.policy = policy
        self.routes = routes
        self.loopback_only = loopback_only

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        host = headers.get("host")
        if self.loopback_only and host is not None and not is_loopback(host_name(host) or ""):
            message = (
                f"this server answers only requests made to localhost or 127.0.0.1 (Host: {host[:100]}); "
                "use localhost or 127.0.0.1 in the client's address, or start the server with --host on a network "
                "address to reach it by another name"
            )
            await send_error(send, 403, "host_not_allowed", message)
            return
        origin = headers.get("origin")
        if origin is not None and self._same_origin(origin, scope, headers):
            origin = None
        if origin is not None and not self.policy.allows(origin):
            message = f"pages from {origin} may not call this server; start it with --cors {origin} to allow them"
            await send_error(send, 403, "origin_not_allowed", message)
            return
        if scope["method"] == "OPTIONS":
            methods = self.routes.methods(scope.get("path", ""))
            if methods:
                await self._options(send, sorted(methods), origin, headers)
                return
        if origin is None:
            await self.app(scope, receive, send)
            return
        allowed = origin.encode("latin-1")

        async def with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", allowed),
                    (b"access-control-expose-headers", _EXPOSED),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self.app(scope, receive, with_cors)

    @staticmethod
    def _same_origin(origin: str, scope: Scope, headers: dict[str, str]) -> bool:
        host = headers.get("host")
        if not host:
            return False
        try:
            return parse_origin(origin) == parse_origin(f"{scope.get('scheme', 'http')}://{host}")
        except UsageError:
            return False

    @staticmethod
    async def _options(send: Send, methods: list[str], origin: str | None, headers: dict[str, str]) -> None:
        listed = ", ".join(methods).encode()
        raw = [(b"allow", listed)]  # a 204 has no body, and so no Content-Length
        if origin is not None and "access-control-request-method" in headers:
            raw += [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", listed),
                (b"access-control-max-age", str(MAX_AGE_SECONDS).encode()),
                (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
            ]
            asked = headers.get("access-control-request-headers")
            if asked:
                raw.append((b"access-control-allow-headers", asked.encode("latin-1")))
            if headers.get("access-control-request-private-network") == "true":
                # Chrome asks before a public page reaches a private address; the origin is allowed already.
                raw.append((b"access-control-allow-private-network", b"true"))
        await send({"type": "http.response.start", "status": 204, "headers": raw})
        await send({"type": "http.response.body", "body": b""})
