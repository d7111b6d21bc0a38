"""One life for every thread speakcli starts: start once, a stop event its work watches, join with a deadline."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("speakcli")


class ServiceThread:
    """A named daemon thread running `target(stop)`, where `stop` is the event asking it to end.

    The same protocol for the synthesis worker, the watch daemon's loops, the server's batch jobs and the HTTP
    server's thread (as watchdog's BaseThread gives every observer thread one): `start()` once, `request_stop()`
    (sets the event, then calls `on_stop`, for work that waits on something else than the event: a queue, a
    socket), `join(timeout)` that says whether it ended, and `stop(timeout)` for both. A target that raises keeps
    its error in `error` (and calls `on_failure`) instead of dying unseen.
    """

    def __init__(
        self,
        name: str,
        target: Callable[[threading.Event], None],
        *,
        on_stop: Callable[[], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.name = name
        self.stop_event = threading.Event()
        self._target = target
        self._on_stop = on_stop
        self._on_failure = on_failure
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def start(self) -> None:
        """Start the thread (once; a second call does nothing)."""
        with self._lock:
            if self._thread is not None:
                return
            thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            thread.start()
            # Only a started thread is kept: a Ctrl-C inside start() must not leave a stop() it cannot join.
            self._thread = thread

    def _run(self) -> None:
        try:
            self._target(self.stop_event)
        except BaseException as exc:  # kept and reported: a broken thread must not vanish unseen
            self.error = exc
            log.debug("thread %s failed: %s: %s", self.name, type(exc).__name__, exc)
            if self._on_failure is not None:
                self._on_failure(exc)

    @property
    def stopping(self) -> bool:
        return self.stop_event.is_set()

    @property
    def started(self) -> bool:
        return self._thread is not None

    @property
    def alive(self) -> bool:
        thread = self._thread
        return thread is not None and thread.is_alive()

    def request_stop(self) -> None:
        """Ask the work to end (the event, then `on_stop`); returns at once."""
        self.stop_event.set()
        if self._on_stop is not None:
            self._on_stop()

    def join(self, timeout: float | None = None) -> bool:
        """Wait up to `timeout` seconds for the thread to end; True when it has (or never started)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def stop(self, timeout: float | None = None) -> bool:
        """`request_stop()`, then `join(timeout)`."""
        self.request_stop()
        return self.join(timeout)
