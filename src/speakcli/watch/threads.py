"""The watch daemon's threads: started together, the first failure kept and acted on, joined with a deadline."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from speakcli.lifecycle import ServiceThread

log = logging.getLogger("speakcli")


class DaemonThreads:
    """Runs each loop on a thread of its own (a `ServiceThread`); a loop that raises calls `on_failure` (which
    stops the others) instead of hanging them, and the first error is kept for the caller to report."""

    def __init__(self, on_failure: Callable[[BaseException], None]) -> None:
        self._on_failure = on_failure
        self._threads: list[ServiceThread] = []
        self._error: BaseException | None = None
        self._lock = threading.Lock()

    @property
    def error(self) -> BaseException | None:
        """The first error a loop raised, if any."""
        return self._error

    def add(self, name: str, loop: Callable[[], None]) -> None:
        """A loop on its own thread; it watches the daemon's own stop policy, not the thread's stop event."""
        self._threads.append(ServiceThread(f"speakcli-watch-{name}", lambda stop: loop(), on_failure=self._failed))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def _failed(self, exc: BaseException) -> None:
        """A broken thread stops the daemon instead of hanging it."""
        with self._lock:
            if self._error is None:  # the first is the cause; later ones are its echoes
                self._error = exc
        log.debug("watch thread failed: %s: %s", type(exc).__name__, exc)
        self._on_failure(exc)

    def join(self, timeout: float | None, tick: Callable[[], None]) -> bool:
        """Wait for every thread (True when all ended), calling `tick` about every 0.1 s while some run."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            alive = [t for t in self._threads if t.alive]
            if not alive:
                return True
            tick()
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            alive[0].join(left)
