"""Reading Wyoming events leniently: a malformed event is reported and skipped, not taken for a hang-up."""

from __future__ import annotations

import asyncio
from typing import Any

from wyoming.event import Event

from speakcli import jsontext

# Larger headers, data or payloads are refused: a text-to-speech request needs none of that size.
MAX_DATA_BYTES = 1024 * 1024
MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
# A refused event's bytes are read and dropped, so the next event can be read, up to this many; past it the
# declared length is taken for garbage rather than for bytes that will really come, and the connection closes.
MAX_SKIP_BYTES = 64 * 1024 * 1024
SKIP_PIECE = 64 * 1024  # skipped bytes are read in pieces of at most this many, never held all at once


class BadEvent(Exception):
    """An event that could not be read; `fatal` when the stream cannot be followed after it."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _length(header: dict[str, Any], key: str) -> int:
    value = header.get(key)
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        # How many bytes follow is unknown, so where the next event starts is too: nothing after it can be read.
        raise BadEvent(f"{key} must be a whole number of bytes; closing, as the next event cannot be found", True)
    return value


async def _skip(reader: asyncio.StreamReader, count: int) -> None:
    while count > 0:
        piece = await reader.readexactly(min(count, SKIP_PIECE))
        count -= len(piece)


async def _header_line(reader: asyncio.StreamReader) -> bytes:
    """The next line (b"" at the end); a line past the reader's limit is read to its end in pieces and dropped."""
    try:
        return await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as exc:
        return exc.partial  # the client closed mid-line: b"" or a last line without its newline
    except asyncio.LimitOverrunError as exc:
        dropped = 0
        while True:  # the bytes before the newline (or all buffered, when none yet) are dropped, then the rest
            dropped += exc.consumed
            if dropped > MAX_SKIP_BYTES:
                raise BadEvent("event header line is far too long; closing the connection", fatal=True) from None
            await reader.readexactly(max(1, exc.consumed))
            try:
                await reader.readuntil(b"\n")
                break
            except asyncio.LimitOverrunError as again:
                exc = again
        raise BadEvent("event header line is too long; it was skipped") from None


async def read_event(reader: asyncio.StreamReader) -> Event | None:
    """The next event, or None when the client has closed; raises `BadEvent` for one that is not well formed."""
    line = await _header_line(reader)
    if not line:
        return None
    try:
        header = jsontext.loads(line)
    except ValueError:
        raise BadEvent("event header is not JSON; send one JSON object per line") from None
    if not isinstance(header, dict):
        raise BadEvent("event header is not a JSON object")
    data_length = _length(header, "data_length")
    payload_length = _length(header, "payload_length")
    if data_length > MAX_DATA_BYTES or payload_length > MAX_PAYLOAD_BYTES:
        key, value, most = (
            ("data_length", data_length, MAX_DATA_BYTES)
            if data_length > MAX_DATA_BYTES
            else ("payload_length", payload_length, MAX_PAYLOAD_BYTES)
        )
        if data_length + payload_length > MAX_SKIP_BYTES:
            raise BadEvent(f"{key} {value} is far over the limit of {most} bytes; closing the connection", True)
        await _skip(reader, data_length + payload_length)
        raise BadEvent(f"{key} {value} is over the limit of {most} bytes; the event was skipped")
    data = header.get("data") or {}
    extra = await reader.readexactly(data_length) if data_length else b""
    payload = await reader.readexactly(payload_length) if payload_length else None
    if extra:
        try:
            more = jsontext.loads(extra)
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
