"""The synthesis worker: one thread owns the engine and serves every job a step at a time; front ends read queues."""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from speakcli.engines.base import BatchingEngine, Engine, Sentence
from speakcli.errors import WorkerClosedError
from speakcli.lifecycle import ServiceThread
from speakcli.scheduling.jobs import CallTask, Job, Priority, SpeechTask
from speakcli.scheduling.policy import Scheduler
from speakcli.scheduling.runs import CallRun, SpeechRun, engine_failure

__all__ = ["Job", "SchedulerState", "SynthesisWorker"]

T = TypeVar("T")
_STOP = object()


@dataclass(frozen=True)
class SchedulerState:
    """What the worker is doing, for a report: jobs in hand by class, and the batch size in use."""

    interactive: int
    background: int
    calls: int
    max_batch: int  # sentences a step takes at most (1: the engine does not batch)
    last_batch: int  # sentences the latest step took

    @property
    def active(self) -> int:
        return self.interactive + self.background + self.calls


class Pace:
    """Seconds of the worker's time per sentence made: a running estimate, for Retry-After."""

    def __init__(self, guess: float = 2.0) -> None:
        self.seconds = guess
        self._busy = 0.0
        self._made = 0

    def add(self, seconds: float, sentences: int) -> None:
        """Count a turn or step that took `seconds` and finished `sentences` (often none: a step of a sentence)."""
        self._busy += seconds
        self._made += sentences
        if self._made:
            self.seconds = 0.8 * self.seconds + 0.2 * (self._busy / self._made)
            self._busy, self._made = 0.0, 0


class SynthesisWorker:
    """A single thread that loads the engine on first use and serves every job in its hands in turns.

    Speech jobs are data (`SpeechTask`): the worker splits each into sentences and, on an engine that batches,
    steps the sentences of up to `max_batch` jobs together (one model step for all); on any other engine it
    makes one job's next sentence per turn. Who goes next is the `Scheduler`'s choice: interactive before
    background, newcomers first. Each job's audio stays in its own order and goes only to its own queue. Calls
    (`CallTask`) run whole, before the next step.
    """

    def __init__(self, engine: Engine, name: str = "speakcli-synth", max_batch: int = 0) -> None:
        self.engine = engine
        self._inbox: queue.Queue[Any] = queue.Queue()
        self._lock = threading.Lock()
        # The loop also waits on the inbox: a stop puts a marker there, behind what was submitted before it.
        self._life = ServiceThread(name, self._run, on_stop=lambda: self._inbox.put(_STOP))
        self._loaded = False
        self._requested_batch = max_batch  # 0: the engine's default for its device, once loaded
        self._scheduler = Scheduler()
        self._calls: deque[CallRun] = deque()
        self._order = 0
        self._last_batch = 0
        self._pace = Pace()
        self._retired_sentences = 0
        self.jobs_run = 0

    # -- submitting ----------------------------------------------------------------------------------------------
    def _ensure_started(self) -> None:
        with self._lock:
            if self._life.stopping:
                raise WorkerClosedError()
            self._life.start()

    def submit(self, task: SpeechTask | CallTask, notify: Callable[[], None] | None = None) -> Job[Any]:
        job: Job[Any] = Job(task, notify)
        self._ensure_started()
        self._inbox.put(job)
        return job

    def call(self, fn: Callable[[Engine], T]) -> T:
        """Run `fn(engine)` on the worker thread and return its result (or raise its error)."""
        job: Job[T] = self.submit(CallTask(fn))
        return job.result()

    # -- the loop ------------------------------------------------------------------------------------------------
    def _admit(self, block: bool) -> bool:
        """Take the submitted jobs into the worker's hands (waiting for one when `block`); False once stopping."""
        try:
            item = self._inbox.get() if block else self._inbox.get_nowait()
        except queue.Empty:
            return True
        while True:
            if item is _STOP:
                return False
            self._order += 1
            if isinstance(item.task, CallTask):
                self._calls.append(CallRun(item, self._order))
            else:
                self._scheduler.add(SpeechRun(item, self._order, self.engine))
            try:
                item = self._inbox.get_nowait()
            except queue.Empty:
                return True

    def _run(self, stop: threading.Event) -> None:
        while True:
            idle = not self._calls and not len(self._scheduler)
            if not self._admit(block=idle):
                self._fail_all(WorkerClosedError("the synthesis worker closed before this job ended"))
                return
            self._drop_cancelled()
            if not self._calls and not len(self._scheduler):
                continue
            if not self._load():
                continue
            if self._calls:
                run = self._calls.popleft()
                run.turn(self.engine)
                self.jobs_run += 1
                continue
            began, before = time.monotonic(), self._sentences_done()
            if isinstance(self.engine, BatchingEngine) and self.engine.capabilities.batching:
                self._step(self.engine)
            else:
                self._turn()
            self._pace.add(time.monotonic() - began, self._sentences_done() - before)

    def _load(self) -> bool:
        """Load the engine once; a failed load fails the jobs in hand, and the next job tries again."""
        if self._loaded:
            return True
        try:
            self.engine.load()
        except Exception as exc:
            self._fail_all(exc)
            return False
        self._loaded = True
        return True

    def _turn(self) -> None:
        run = self._scheduler.next_turn()
        if run is None:
            return
        self._last_batch = 1
        try:
            run.turn()
        except Exception as exc:
            run.end(engine_failure(exc))
        self._retire(run)

    def _step(self, engine: BatchingEngine) -> None:
        runs = self._scheduler.next_batch(self.max_batch)
        stepped: list[tuple[SpeechRun, Sentence]] = []
        for run in runs:
            try:
                sentence = run.ready_sentence()
            except Exception as exc:  # a bad sentence (too many tokens, a missing language package) fails its job
                run.end(engine_failure(exc))
                sentence = None
            if sentence is not None:
                stepped.append((run, sentence))
            else:
                self._retire(run)
        if not stepped:
            return
        self._last_batch = len(stepped)
        try:
            engine.step([sentence for _, sentence in stepped])
        except Exception as exc:
            for run, _ in stepped:
                run.end(engine_failure(exc))
        for run, _ in stepped:
            if not run.finished:
                try:
                    run.stepped()
                except Exception as exc:
                    run.end(engine_failure(exc))
            self._retire(run)

    def _retire(self, run: SpeechRun) -> None:
        if run.finished:
            self._scheduler.remove(run)
            self._retired_sentences += run.sentences_done
            self.jobs_run += 1

    def _sentences_done(self) -> int:
        """Sentences made so far by this worker (the finished runs' and those in hand)."""
        return self._retired_sentences + sum(run.sentences_done for run in self._scheduler.runs())

    def _drop_cancelled(self) -> None:
        """Jobs whose consumer gave up end now, after the step in progress, and free what they held."""
        for run in self._scheduler.runs():
            if run.job.cancelled:
                run.end()
                self._retire(run)
        for call in [c for c in self._calls if c.job.cancelled]:
            self._calls.remove(call)
            call.end()

    def _fail_all(self, exc: BaseException) -> None:
        for run in self._scheduler.runs():
            run.end(exc)
            self._scheduler.remove(run)
        while self._calls:
            self._calls.popleft().end(exc)

    # -- stopping and reporting ------------------------------------------------------------------------------------
    def close(self, timeout: float | None = None) -> None:
        """Stop after the step in progress: jobs not finished by then fail with WorkerClosedError. Joins the thread."""
        with self._lock:
            self._life.request_stop()
        self._life.join(timeout)

    @property
    def max_batch(self) -> int:
        """Sentences a step takes at most: the setting, else the engine's default (1 for engines that do not batch)."""
        if not (isinstance(self.engine, BatchingEngine) and self.engine.capabilities.batching):
            return 1
        if self._requested_batch > 0:
            return self._requested_batch
        return self.engine.max_batch() if self._loaded else 1

    def state(self) -> SchedulerState:
        """A snapshot for reports; read from any thread (the counts may be a step old)."""
        return SchedulerState(
            interactive=self._scheduler.count(Priority.INTERACTIVE) + self._inbox.qsize(),
            background=self._scheduler.count(Priority.BACKGROUND),
            calls=len(self._calls),
            max_batch=self.max_batch,
            last_batch=self._last_batch,
        )

    @property
    def loaded(self) -> bool:
        """Whether the engine has been loaded (by the first job)."""
        return self._loaded

    @property
    def seconds_per_sentence(self) -> float:
        return self._pace.seconds

    @property
    def waiting(self) -> int:
        """Jobs in hand beyond what one step serves."""
        return max(0, self.state().active - self.max_batch)

    @property
    def alive(self) -> bool:
        return self._life.alive
