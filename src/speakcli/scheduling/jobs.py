"""Jobs as data: what a front end asks the worker for (speech or a call on the engine), and the handle it reads."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from speakcli.engines.base import Engine, SynthesisOptions, Voice
    from speakcli.ssml import Plan

T = TypeVar("T")
# Called from the worker thread: (sentences done, sentences in all); (0, n) once the engine is loaded and starts.
ProgressCallback = Callable[[int, int], None]


class Priority(IntEnum):
    """Which work the worker serves first. Background work still gets a share while interactive work runs."""

    INTERACTIVE = 0  # someone waits to hear it: say, HTTP speech, Wyoming, watch lines
    BACKGROUND = 1  # files made for later: batch items, HTTP batch jobs


@dataclass(frozen=True)
class SpeechTask:
    """Speech to make: the worker splits the plan into engine-sized pieces and steps through them."""

    plan: Plan
    voice: Voice | None
    options: SynthesisOptions
    priority: Priority = Priority.INTERACTIVE
    on_progress: ProgressCallback | None = None


@dataclass(frozen=True)
class CallTask:
    """Work on the engine that is not speech (a voice's latents, loading it): run whole, in one turn."""

    fn: Callable[[Engine], Any]


class Failure:
    """An error a job ended with, carried through its queue to be raised on the consumer's thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


DONE = object()  # the end of a job's items


class Job(Generic[T]):
    """One request to the worker. Iterate it for its items as the worker yields them; errors re-raise here."""

    def __init__(self, task: SpeechTask | CallTask, notify: Callable[[], None] | None = None) -> None:
        self.task = task
        self._out: queue.Queue[Any] = queue.Queue()
        self._cancelled = threading.Event()
        self._notify = notify  # called (on the worker thread) after each item, the end, or an error
        self._done_callbacks: list[Callable[[Job[T]], None]] = []
        self._callbacks_lock = threading.Lock()
        self.started = threading.Event()  # the worker took it up (waiting jobs are not started)
        self.done = threading.Event()
        self.elapsed: float | None = None  # seconds from its start to its end, once done (shared with others)
        self.first_item_after: float | None = None  # seconds from the job's start to its first item
        self.items = 0
        self.progress: tuple[int, int] | None = None  # (sentences done, sentences in all), once split
        self.completed = False  # it ran to its end: every item was made (not cancelled, failed or closed)

    @property
    def priority(self) -> Priority:
        return self.task.priority if isinstance(self.task, SpeechTask) else Priority.INTERACTIVE

    def cancel(self) -> None:
        """Ask the worker to stop this job after the step in progress (or skip it if not started)."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def sentences_left(self) -> int:
        """Sentences still to make (an estimate from the text's length until the worker has split it)."""
        if self.progress is not None:
            return self.progress[1] - self.progress[0]
        if isinstance(self.task, SpeechTask):
            return max(1, sum(len(getattr(p, "text", "")) for p in self.task.plan.parts) // 100)
        return 1

    def __iter__(self) -> Iterator[T]:
        try:
            while True:
                item = self._out.get()
                if item is DONE:
                    return
                if isinstance(item, Failure):
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
            if item is DONE:
                return items, True
            if isinstance(item, Failure):
                raise item.exc
            items.append(item)

    def add_done_callback(self, fn: Callable[[Job[T]], None]) -> None:
        """Call `fn(job)` once when the job ends (run, failed, cancelled or dropped at close); now if it has."""
        with self._callbacks_lock:
            if not self.done.is_set():
                self._done_callbacks.append(fn)
                return
        fn(self)

    def result(self) -> T:
        """The single item of a call job (`SynthesisWorker.call`)."""
        items = list(self)
        return items[0]

    # -- the worker's side -------------------------------------------------------------------------------------
    def put(self, item: Any) -> None:
        self._out.put(item)
        if self._notify is not None:
            self._notify()

    def finish(self, failure: BaseException | None = None) -> None:
        """End the job: its end marker (or its error) goes to the consumer, then the done callbacks run."""
        self.put(DONE if failure is None else Failure(failure))
        with self._callbacks_lock:
            self.done.set()
            callbacks, self._done_callbacks = self._done_callbacks, []
        for fn in callbacks:
            fn(self)
