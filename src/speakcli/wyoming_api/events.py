"""Reading Wyoming events leniently: a malformed event is reported and skipped, not taken for a hang-up."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from wyoming.event import Event

# Larger headers, data or payloads are refused: a text-to-speech request needs none of that size.
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024


class BadEvent(Exception):
    """An event that could not be read; `fatal` when the stream cannot be followed after it."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _length(header: dict[str, Any], key: str, most: int) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise BadEvent(f"{key} must be a whole number of bytes", fatal=True)
    if value > most:
        raise BadEvent(f"{key} {value} is over the limit of {most} bytes", fatal=True)
    return value


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None when the client has closed; raises `BadEvent` for one that is not well formed."""
    try:
        line = await reader.readline()
    except ValueError:  # a header line past the reader's limit; the reader dropped it
        raise BadEvent("event header line is too long") from None
    if not line:
        return None
    try:
        header = json.loads(line)
    except ValueError:
        raise BadEvent("event header is not JSON; send one JSON object per line") from None
    if not isinstance(header, dict):
        raise BadEvent("event header is not a JSON object")
    data_length = _length(header, "data_length", MAX_DATA_BYTES)
    payload_length = _length(header, "payload_length", MAX_PAYLOAD_BYTES)
    data = header.get("data") or {}
    extra = await reader.readexactly(data_length) if data_length else b""
    payload = await reader.readexactly(payload_length) if payload_length else None
    if extra:
        try:
            more = json.loads(extra)
        except ValueError:
            raise BadEvent("event data is not JSON") from None
        if not isinstance(more, dict) or not isinstance(data, dict):
            raise BadEvent("event data is not a JSON object")
        data = {**data, **more}
    kind = header.get("type")
    if not isinstance(kind, str) or not kind:
        raise BadEvent("event has no type")
    if not isinstance(data, dict):
        raise BadEvent("event data is not a JSON object")
    return Event(type=kind, data=data, payload=payload)
