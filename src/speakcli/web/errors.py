"""The one JSON body of every HTTP error, from a route or the outer guard: {"error": {"code", "message"}}."""

from __future__ import annotations

from typing import Any


def error_body(code: str, message: str) -> dict[str, Any]:
    """The error as JSON-ready data: `code` for machines, `message` for people, on one line."""
    return {"error": {"code": code, "message": " ".join(message.split())}}
