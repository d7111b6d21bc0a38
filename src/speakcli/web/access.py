"""Who may call a route: each route is marked where it is defined, and the guard and CORS read the marks here."""

from __future__ import annotations

import secrets
from collections.abc import Callable, MutableMapping, Sequence
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import unquote_plus

from starlette.routing import BaseRoute, Match, Route

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "speakcli_access"


class Access(Enum):
    """How a route is reached when the server has an API key."""

    KEY = "key"  # the default: `Authorization: Bearer KEY`
    OPEN = "open"  # never a key: health checks, and the identity a client checks before it sends a key
    # Names of voices, models and languages: they carry no audio and no text, and clients that cannot send a
    # key (Open WebUI's voice picker) read them; they need the key only with --private-lists.
    LISTING = "listing"
    # Audio a page plays from a URL (`<audio src>`), which cannot carry a header: the key may also be `?api_key=KEY`.
    LINK = "link"


def access(kind: Access) -> Callable[[F], F]:
    """Mark a route's endpoint (put it under the route's decorator): how it is reached with a key."""

    def mark(endpoint: F) -> F:
        setattr(endpoint, _MARK, kind)
        return endpoint

    return mark


class RouteTable:
    """The app's routes, matched against a request the way its router will match it."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = routes

    def access(self, scope: MutableMapping[str, Any]) -> Access:
        """How the request in `scope` is reached: its route's mark; `KEY` for an unmarked or unknown route."""
        for route in self.routes:
            match, _ = route.matches(scope)
            if match is Match.FULL:
                endpoint = getattr(route, "endpoint", None)
                kind = getattr(endpoint, _MARK, Access.KEY)
                return kind if isinstance(kind, Access) else Access.KEY
        return Access.KEY

    def methods(self, path: str) -> set[str]:
        """Every method some route at `path` takes; empty when no route is there."""
        found: set[str] = set()
        for route in self.routes:
            if isinstance(route, Route) and route.path_regex.match(path):
                found |= route.methods or set()
        return found

    def marked(self, kind: Access) -> list[str]:
        """The paths of the routes marked `kind` (for tests and documentation)."""
        return [r.path for r in self.routes if isinstance(r, Route) and getattr(r.endpoint, _MARK, None) is kind]


def take_query_key(scope: MutableMapping[str, Any]) -> str | None:
    """Remove `api_key` from the request's query string, so no route, error or log ever sees it; return its value
    (the last one given), or None."""
    query: bytes = scope.get("query_string", b"")
    if b"api_key" not in query:
        return None
    kept: list[bytes] = []
    found: str | None = None
    for part in query.split(b"&"):
        name, _, value = part.partition(b"=")
        if unquote_plus(name.decode("latin-1")) == "api_key":
            found = unquote_plus(value.decode("latin-1"))
        else:
            kept.append(part)
    scope["query_string"] = b"&".join(kept)
    return found


class KeyCheck:
    """The server's API key, and where a request may carry it: `Authorization: Bearer KEY` on any route, and
    `?api_key=KEY` on a `LINK` route only (a key in a URL ends up in histories and caches: only where no header
    can be sent)."""

    def __init__(self, key: str, private_lists: bool = False) -> None:
        self.key = key
        self._bearer = f"bearer {key}".encode()
        self._key = key.encode()
        self.private_lists = private_lists

    def needed(self, kind: Access) -> bool:
        return kind is Access.KEY or kind is Access.LINK or (kind is Access.LISTING and self.private_lists)

    def in_header(self, authorization: bytes) -> bool:
        # The scheme is case-insensitive (RFC 9110); the key is compared in constant time.
        return secrets.compare_digest(authorization[:7].lower() + authorization[7:], self._bearer)

    def in_query(self, value: str) -> bool:
        return secrets.compare_digest(value.encode("utf-8", "replace"), self._key)
