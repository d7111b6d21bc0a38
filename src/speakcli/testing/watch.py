"""A test's view of a running watch daemon: its producer's passes over the files, counted, brought on, waited for."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from speakcli.watch import WatchDaemon


class Passes:
    """Counts the passes a daemon's producer makes over its files from now on (make it before `start`, to count
    them all), so a test waits for an event instead of a poll interval."""

    def __init__(self, daemon: WatchDaemon) -> None:
        self._daemon = daemon
        self.count = 0
        self.made = threading.Condition()  # notified after each pass
        poll = daemon.producer.poll

        def counted() -> None:
            poll()
            with self.made:
                self.count += 1
                self.made.notify_all()

        daemon.producer.poll = counted  # type: ignore[method-assign]

    def wait(self, n: int = 1, timeout: float = 10.0) -> bool:
        """Wake the producer until it has made `n` more passes (no waiting out the poll interval); False past
        `timeout`."""
        deadline = time.monotonic() + timeout
        with self.made:
            target = self.count + n
            while self.count < target:
                self._daemon.reader.wake.set()
                if not self.made.wait(max(0.0, min(0.2, deadline - time.monotonic()))) and time.monotonic() > deadline:
                    return False
        return True

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until `predicate()` holds, checked after each pass (and now); False past `timeout`."""
        with self.made:
            return self.made.wait_for(predicate, timeout)

    def none_within(self, seconds: float, since: int | None = None) -> bool:
        """Whether no pass is made (after pass number `since`, default now) within `seconds`.

        A negative: waiting out the window is the test.
        """
        with self.made:
            start = self.count if since is None else since
            return not self.made.wait_for(lambda: self.count != start, timeout=seconds)
