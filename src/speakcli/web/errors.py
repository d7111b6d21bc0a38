"""The one JSON body of every HTTP error, from a route or the outer guard: {"error": {"code", "message"}}."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error as JSON-ready data: `code` for machines, `message` for people, on one line."""
    return {"error": {"code": code, "message": " ".join(message.split())}}


def problems(errors: Sequence[Any]) -> str:
    """A request's validation errors (pydantic's) in one line: the first three, each as `field: what is wrong`."""
    found = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        found.append(f"{where or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(found)
