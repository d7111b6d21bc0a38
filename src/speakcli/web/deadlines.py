"""uvicorn's h11 connection with deadlines: a request's head and body must arrive in time, or it is closed."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("speakcli")

# An idle connection between requests is closed after this (uvicorn's timeout_keep_alive).
KEEP_ALIVE_SECONDS = 5
# A request's line and headers must arrive within this of the connection's opening or the previous response.
HEAD_SECONDS = 10.0
# A request's body must arrive within this of its headers: the largest upload (8 clips of 20 MB) needs ~3 MB/s.
BODY_SECONDS = 60.0


@dataclass(frozen=True)
class Timeouts:
    """How long a client may take; a connection past a deadline is closed (tests pass small ones)."""

    keep_alive: int = KEEP_ALIVE_SECONDS
    head: float = HEAD_SECONDS
    body: float = BODY_SECONDS


class DeadlineProtocol(H11Protocol):
    """One HTTP/1.1 connection whose request must arrive in time, so a client that trickles bytes, or connects and
    sends nothing, cannot hold a connection (and its buffers) for ever.

    uvicorn bounds only the idle time after a response; this adds a deadline for a request's head, from the
    connection's opening or the previous response's end, and one for its body, from its head. A response being
    sent has no deadline: a long stream to a slow reader is not cut.
    """

    timeouts = Timeouts()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._awaited: str | None = None  # "headers" or "body": the part of a request being waited for
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._track()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may start the next request on this connection
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._arm(None, 0.0)
        super().connection_lost(exc)

    def _track(self) -> None:
        """Arm the deadline of the part of a request now awaited, once per part; none while a response is sent."""
        state = self.conn.their_state
        if state is h11.IDLE and (self.cycle is None or self.cycle.response_complete):
            self._arm("headers", self.timeouts.head)
        elif state is h11.SEND_BODY:
            self._arm("body", self.timeouts.body)
        else:
            self._arm(None, 0.0)

    def _arm(self, part: str | None, seconds: float) -> None:
        if part == self._awaited:
            return  # the deadline runs from the start of this part, not from its latest bytes
        self._awaited = part
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if part is not None and self.transport is not None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(seconds, self._expired, part)

    def _expired(self, part: str) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing a connection whose request %s did not arrive in time", part)
            self.transport.close()


def deadline_protocol(timeouts: Timeouts) -> type[DeadlineProtocol]:
    """The protocol class for one server's timeouts (uvicorn builds each connection from a class)."""
    return type("DeadlineProtocol", (DeadlineProtocol,), {"timeouts": timeouts})
