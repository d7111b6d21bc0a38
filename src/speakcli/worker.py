"""The synthesis worker: one thread owns the engine; front ends submit jobs and read results from a queue."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from speakcli.engines.base import Engine
from speakcli.errors import WorkerClosedError

T = TypeVar("T")
_DONE = object()
_STOP = object()


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class Job(Generic[T]):
    """One request to the worker. Iterate it for its items as the worker yields them; errors re-raise here."""

    def __init__(self, fn: Callable[[Engine], Iterable[T]], notify: Callable[[], None] | None = None) -> None:
        self.fn = fn
        self._out: queue.Queue[Any] = queue.Queue()
        self._cancelled = threading.Event()
        self._notify = notify  # called (on the worker thread) after each item, the end, or an error
        self._done_callbacks: list[Callable[[Job[T]], None]] = []
        self._callbacks_lock = threading.Lock()
        self.started = threading.Event()  # the worker took it up (waiting jobs are not started)
        self.done = threading.Event()
        self.elapsed: float | None = None  # seconds the worker spent on this job, once done
        self.first_item_after: float | None = None  # seconds from the job's start to its first item
        self.items = 0

    def cancel(self) -> None:
        """Ask the worker to stop this job after the item in progress (or skip it if not started)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._out.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            # A consumer that stops early (an error, Ctrl-C, break) must not leave the worker producing.
            if not self.done.is_set():
                self.cancel()

    def take(self) -> tuple[list[T], bool]:
        """Without blocking: the items made since the last call, and whether the job has ended; re-raises its error.

        For consumers that cannot block on `__iter__` (an event loop woken by `notify`).
        """
        items: list[T] = []
        while True:
            try:
                item = self._out.get_nowait()
            except queue.Empty:
                return items, False
            if item is _DONE:
                return items, True
            if isinstance(item, _Failure):
                raise item.exc
            items.append(item)

    def add_done_callback(self, fn: Callable[[Job[T]], None]) -> None:
        """Call `fn(job)` once when the job ends (run, failed, cancelled or dropped at close); now if it has."""
        with self._callbacks_lock:
            if not self.done.is_set():
                self._done_callbacks.append(fn)
                return
        fn(self)

    def _put(self, item: Any) -> None:
        self._out.put(item)
        if self._notify is not None:
            self._notify()

    def _finish(self) -> None:
        with self._callbacks_lock:
            self.done.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for fn in callbacks:
            fn(self)

    def result(self) -> T:
        """The single item of a job made by `SynthesisWorker.call`."""
        items = list(self)
        return items[0]


class SynthesisWorker:
    """A single thread that loads the engine on first use and runs jobs one at a time, in submission order."""

    def __init__(self, engine: Engine, name: str = "speakcli-synth") -> None:
        self.engine = engine
        self._jobs: queue.Queue[Any] = queue.Queue()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._name = name
        self._loaded = False
        self.jobs_run = 0

    def _ensure_started(self) -> None:
        with self._lock:
            if self._stop.is_set():
                raise WorkerClosedError()
            if self._thread is None:
                thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                thread.start()
                # Only a started thread is kept: a Ctrl-C inside start() must not leave close() one it cannot join.
                self._thread = thread

    def submit(self, fn: Callable[[Engine], Iterable[T]], notify: Callable[[], None] | None = None) -> Job[T]:
        job: Job[T] = Job(fn, notify)
        self._ensure_started()
        self._jobs.put(job)
        return job

    def call(self, fn: Callable[[Engine], T]) -> T:
        """Run `fn(engine)` on the worker thread and return its result (or raise its error)."""
        return self.submit(lambda engine: [fn(engine)]).result()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _STOP:
                return
            started = time.monotonic()
            job.started.set()
            try:
                if not job.cancelled:
                    if not self._loaded:  # once per worker; a failed load is tried again by the next job
                        self.engine.load()
                        self._loaded = True
                    for item in job.fn(self.engine):
                        if job.cancelled:
                            break
                        if job.first_item_after is None:
                            job.first_item_after = time.monotonic() - started
                        job.items += 1
                        job._put(item)
                job._put(_DONE)
            except BaseException as exc:  # the caller's thread re-raises it; the worker lives on
                job._put(_Failure(exc))
            finally:
                job.elapsed = time.monotonic() - started
                self.jobs_run += 1
                job._finish()

    def close(self, timeout: float | None = None) -> None:
        """Stop after the job in progress; queued jobs are cancelled. Joins the thread."""
        with self._lock:
            self._stop.set()
            thread = self._thread
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if isinstance(job, Job):
                job._put(_Failure(WorkerClosedError("the synthesis worker closed before this job ran")))
                job._finish()
        self._jobs.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    @property
    def waiting(self) -> int:
        """Jobs queued behind the one in progress."""
        return self._jobs.qsize()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()
