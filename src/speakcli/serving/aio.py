"""A job's audio on an asyncio event loop: the worker thread wakes the loop, so the loop never blocks on it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable

import numpy as np

from speakcli.serving.gateway import Gateway, SpeechRequest
from speakcli.worker import Job

# How often a waiting consumer asks whether its client went away while the worker is still on the job.
POLL_SECONDS = 0.25


class AsyncSpeech:
    """One request queued through the gateway, read from the event loop. Create it on the loop's thread."""

    def __init__(self, gateway: Gateway, request: SpeechRequest) -> None:
        loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

        def notify() -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening any more
                loop.call_soon_threadsafe(self._event.set)

        self.job: Job[np.ndarray] = gateway.speak(request, notify)
        self.sample_rate = gateway.sample_rate
        self.finished = False  # every chunk was read and the job ran to its end, not cancelled on the way

    async def chunks(self, gone: Callable[[], Awaitable[bool]] | None = None) -> AsyncGenerator[np.ndarray, None]:
        """The audio as the worker makes it. When `gone()` says the client left, or the consumer stops early,
        the job is cancelled: the worker stops after the sentence in progress and nobody gets its audio."""
        loop = asyncio.get_running_loop()
        checked = loop.time()
        try:
            while True:
                self._event.clear()  # before take(): an item put after it sets the event again
                items, ended = self.job.take()
                for item in items:
                    yield item
                if ended:
                    self.finished = self.job.completed
                    return
                # Asked every POLL_SECONDS whether items come or not: a steady stream must not hide a departure.
                if gone is not None and loop.time() - checked >= POLL_SECONDS:
                    checked = loop.time()
                    if await gone():
                        return
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._event.wait(), POLL_SECONDS)
        finally:
            if not self.job.done.is_set():
                self.job.cancel()

    async def whole(self, gone: Callable[[], Awaitable[bool]] | None = None) -> np.ndarray:
        parts = [chunk async for chunk in self.chunks(gone)]
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)
