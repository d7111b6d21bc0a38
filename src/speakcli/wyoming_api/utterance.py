"""One request's text as a Wyoming connection receives it, whole or in pieces, taken by the speaker in batches."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from speakcli.errors import LimitError
from speakcli.wyoming_api.sentences import SentenceBuffer


@dataclass(eq=False)  # each request is itself, compared and hashed by identity
class Utterance:
    """Sentences waiting to be spoken for one `synthesize` or one `synthesize-start` ... `synthesize-stop`."""

    voice: str | None
    language: str | None
    streaming: bool
    buffer: SentenceBuffer
    max_pending: int  # characters that may wait unspoken, so a client cannot queue unbounded text
    ready: list[str] = field(default_factory=list)  # complete sentences not yet taken
    closed: bool = False  # all text has arrived
    failed: bool = False  # an error was sent: the rest is dropped
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, text: str) -> None:
        """More text (not after `close`); when too much waits, fails and raises `LimitError`."""
        if self.failed:
            return
        self.ready.extend(self.buffer.add(text))
        if sum(map(len, self.ready)) + self.buffer.pending > self.max_pending:
            self.fail()
            raise LimitError(f"more than {self.max_pending} characters of text are waiting to be spoken")
        self._changed.set()

    def close(self) -> None:
        if not self.failed:
            self.ready.extend(self.buffer.finish())
        self.closed = True
        self._changed.set()

    def fail(self) -> None:
        self.failed = True
        self.ready.clear()
        self._changed.set()

    async def take(self, limit: int) -> str | None:
        """The sentences ready now, joined, up to `limit` characters (at least one); None once all text has
        arrived and been taken (a failed one still waits for its end, so a stream is answered once, at its stop)."""
        while not self.ready:
            if self.closed:
                return None
            self._changed.clear()
            await self._changed.wait()
        count, size = 1, len(self.ready[0])
        while count < len(self.ready) and size + 1 + len(self.ready[count]) <= limit:
            size += 1 + len(self.ready[count])
            count += 1
        taken, self.ready = self.ready[:count], self.ready[count:]
        return " ".join(taken)
