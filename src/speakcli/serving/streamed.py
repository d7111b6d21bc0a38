"""Streamed text on an event loop: pieces are queued in constant time and assembled into sentences in a thread."""

from __future__ import annotations

import asyncio
import contextlib

from speakcli.errors import LimitError, SpeakError
from speakcli.streamtext import QUIET_SECONDS, TextStream


class StreamedText:
    """One request's text as a front end receives it, whole or in pieces; its speaker `take`s complete sentences.

    `put` only queues a piece, so a flood of tiny pieces costs the loop nothing but the queueing; the sentences
    are assembled in a thread when the speaker asks for more, from everything that came meanwhile. At most
    `max_pending` characters may wait unspoken. Create, use and `take` it on the loop's thread.
    """

    def __init__(self, stream: TextStream | None, max_pending: int, quiet: float = QUIET_SECONDS) -> None:
        self._loop = asyncio.get_running_loop()
        self._stream = stream  # touched only by `_assemble`'s thread while it runs, by `take` otherwise
        self.max_pending = max_pending
        self.quiet = quiet
        self._inbox: list[str] = []  # pieces not yet handed to the stream
        self._inbox_size = 0
        self._held = 0  # characters in the stream: not yet complete sentences
        self._ready: list[str] = []  # complete sentences not yet taken
        self._ready_size = 0
        self._last_put = self._loop.time()
        self._finished = stream is None  # the stream has handed on its rest
        self.closed = False  # all text has arrived
        self.failed = False  # an error was sent: the rest is dropped
        self._changed = asyncio.Event()

    @classmethod
    def whole(cls, text: str) -> StreamedText:
        """Text that came at once: one piece, already complete (the core splits it into sentences itself)."""
        done = cls(None, len(text))
        done._ready, done._ready_size, done.closed = [text], len(text), True
        return done

    @property
    def pending(self) -> int:
        """Characters received and not yet taken."""
        return self._inbox_size + self._held + self._ready_size

    def put(self, text: str) -> None:
        """More text (not after `close`); when too much would wait, fails and raises `LimitError`."""
        if self.failed or not text:
            return
        if self._stream is None or self.closed:
            raise ValueError("no more text can be put: the text is complete")
        if self.pending + len(text) > self.max_pending:
            self.fail()
            raise LimitError(f"more than {self.max_pending} characters of text are waiting to be spoken")
        self._inbox.append(text)
        self._inbox_size += len(text)
        self._last_put = self._loop.time()
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()

    def fail(self) -> None:
        self.failed = True
        self._inbox, self._inbox_size = [], 0
        self._ready, self._ready_size = [], 0
        self._changed.set()

    async def take(self, limit: int) -> str | None:
        """The sentences complete now, joined, up to `limit` characters (at least one); None once all text has
        arrived and been taken. A failed request still waits for its end, so a stream is answered once, at its stop.
        Raises `SpeakError` (and fails) when the text cannot be spoken: streamed SSML past its limit."""
        while self.failed or not self._ready:
            if self.closed and (self.failed or self._finished):
                return None
            if not self.failed and (self._inbox or self.closed):
                await self._assemble(quiet=False)
                continue
            delay = self._quiet_delay()
            if delay is not None and delay <= 0:
                await self._assemble(quiet=True)
                continue
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)
        count, size = 1, len(self._ready[0])
        while count < len(self._ready) and size + 1 + len(self._ready[count]) <= limit:
            size += 1 + len(self._ready[count])
            count += 1
        taken, self._ready = self._ready[:count], self._ready[count:]
        self._ready_size -= sum(map(len, taken))
        return " ".join(taken)

    def _quiet_delay(self) -> float | None:
        """Seconds until the text has paused long enough to end the open sentence; None when no pause would."""
        if self.failed or self._stream is None or not self._stream.waits_for_quiet:
            return None
        return self._last_put + self.quiet - self._loop.time()

    async def _assemble(self, quiet: bool) -> None:
        """Hand what came to the stream, in a thread: segmenting is CPU work that must not hold up the loop."""
        stream = self._stream
        assert stream is not None
        parts, end = self._inbox, self.closed
        self._held += self._inbox_size
        self._inbox, self._inbox_size = [], 0

        def work() -> tuple[list[str], int]:
            pieces = stream.feed("".join(parts))
            if quiet:
                pieces += stream.quiet()
            if end:
                pieces += stream.finish()
            return pieces, stream.pending

        try:
            pieces, self._held = await asyncio.to_thread(work)
        except SpeakError:
            self.fail()
            raise
        self._finished = end
        if not self.failed:
            self._ready.extend(pieces)
            self._ready_size += sum(map(len, pieces))
