"""Admission to the one worker: the requests in hand, how many wait, a full queue refused with an honest Retry-After."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

from speakcli.errors import BusyError
from speakcli.worker import Job, SynthesisWorker


class Admission:
    """Which requests the server holds, and whether one more may come in: the queue limit and the shutdown.

    A request waits while the worker has not taken it up, and while it is among more requests than the worker
    steps at once; work that is not one job (a clone) holds a place while it runs; so do batch items not yet
    taken up (`queued_items`).
    """

    def __init__(self, worker: SynthesisWorker, max_queue: int, queued_items: Callable[[], int]) -> None:
        self.worker = worker
        self.max_queue = max_queue
        self._queued_items = queued_items
        self._lock = threading.Lock()
        self._in_flight: set[Job[Any]] = set()  # admitted jobs not yet finished
        self._held = 0  # places held by work that is not one job (a clone)
        self._closing = threading.Event()
        self.served = 0  # requests finished (made, failed or cancelled)

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    def stop_accepting(self) -> None:
        """Refuse new requests and cancel every job admitted (each stops after its step)."""
        self._closing.set()
        with self._lock:
            jobs = list(self._in_flight)
        for job in jobs:
            job.cancel()

    @property
    def waiting(self) -> int:
        with self._lock:
            return self._waiting_locked()

    def _waiting_locked(self) -> int:
        started = sum(job.started.is_set() for job in self._in_flight)
        queued = len(self._in_flight) - started
        beyond = max(0, started - self.worker.max_batch)
        return self._held + queued + beyond + self._queued_items()

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: the worker serves the requests in turns, so the one with the
        fewest sentences left ends after about that many sentences of each request in hand."""
        left = [job.sentences_left() for job in self._in_flight] or [1]
        rounds = max(1, len(left) / self.worker.max_batch)
        return max(1, min(60, math.ceil(min(left) * rounds * self.worker.seconds_per_sentence)))

    def _check_room_locked(self) -> None:
        if self._closing.is_set():
            raise BusyError("the server is shutting down", retry_after=5)
        waiting = self._waiting_locked()
        if waiting >= self.max_queue:
            raise BusyError(
                f"the queue is full ({waiting} requests waiting); try again shortly",
                retry_after=self._retry_after(),
            )

    def admit(self, submit: Callable[[], Job[Any]]) -> Job[Any]:
        """`submit()` the job if there is room (else `BusyError`): the check and the queueing in one step, so two
        requests cannot both take the last place."""
        with self._lock:
            self._check_room_locked()
            job = submit()
            self._in_flight.add(job)
        job.add_done_callback(self._finished)
        return job

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold a place for work that is not one job (a clone), or raise `BusyError`."""
        with self._lock:
            self._check_room_locked()
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1

    def _finished(self, job: Job[Any]) -> None:
        with self._lock:
            self._in_flight.discard(job)
            self.served += 1
