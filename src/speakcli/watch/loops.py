"""The watch daemon's three loops, a thread each: read lines into the queue, submit them, deliver their audio."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from speakcli.errors import SpeakError
from speakcli.watch.casting import Announcer
from speakcli.watch.control import LiveControl
from speakcli.watch.delivery import Delivery
from speakcli.watch.events import EventLog
from speakcli.watch.lines import Line
from speakcli.watch.observer import FolderObserver
from speakcli.watch.options import Stats, WatchOptions
from speakcli.watch.producer import Producer
from speakcli.watch.queue import LineQueue, Skips
from speakcli.watch.sinks import Sink
from speakcli.watch.state import StateFile
from speakcli.watch.stopping import StopControl

log = logging.getLogger("speakcli")


class Tally:
    """What became of each line: counted in the stats and told as events."""

    def __init__(self, stats: Stats, events: EventLog) -> None:
        self.stats = stats
        self.events = events

    def read(self, line: Line) -> None:
        self.stats.add("read")
        voicing = {"speaker": line.voicing.speaker, "voice": line.voice} if line.voicing.speaker or line.voice else {}
        self.events.emit("read", line, file=str(line.path), offset=line.start, text=line.text, **voicing)

    def skipped(self, line: Line, reason: str, **details: Any) -> None:
        self.stats.add("skipped")
        self.events.emit("skipped", line, reason=reason, **details)

    def jumped(self, line: Line) -> None:
        """Lines skipped through at once (drop-oldest): one event for all of them."""
        self.stats.add("skipped", line.jumped)
        self.events.emit(
            "skipped", line, reason=line.skip, lines=line.jumped, file=str(line.path), offset=line.start, end=line.end
        )

    def spoken(self) -> None:
        self.stats.add("spoken")

    def failed(self, line: Line, exc: Exception) -> None:
        self.stats.add("failed")
        log.warning("line %d failed: %s", line.seq, " ".join(str(exc).split()) or type(exc).__name__)
        self.skipped(line, f"error: {exc}" if isinstance(exc, SpeakError) else f"error: {exc!r}")


class Intake:
    """Queues each line the producer reads (a full queue blocks or drops, by `overflow`), and tallies it."""

    def __init__(self, lines: LineQueue, tally: Tally, stop: StopControl, overflow: str) -> None:
        self.lines = lines
        self.tally = tally
        self.stop = stop
        self.overflow = overflow

    def __call__(self, line: Line) -> None:
        if line.jumped:
            log.warning(
                "queue full: skipped %d lines of %s to reach the newest (%s)", line.jumped, line.path, self.overflow
            )
            self.lines.put(line, self.stop.requested)  # in order, so the offset past them is recorded in order
            self.lines.count_dropped(line.jumped)
            self.tally.jumped(line)
            return
        self.tally.read(line)
        dropped = self.lines.put(line, self.stop.requested)
        if dropped is not None:  # LineQueue counts drops; this says which line
            log.warning("queue full: dropped line %d (%s)", dropped.seq, self.overflow)
        if line.skip is not None and line is not dropped:
            self.tally.skipped(line, line.skip)
        if dropped is not None:
            self.tally.skipped(dropped, "overflow")


class Handoff:
    """Consumer -> player: (line, job or None, submitted) or Skips, in order, then the end. At most two jobs are
    out at once: one line playing, one being synthesized ahead."""

    def __init__(self) -> None:
        self._items: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(2)
        self._end = object()
        # seq -> (line, its job, None until submitted): lines out of the queue that the player has not taken yet
        self._ahead: dict[int, tuple[Line, Any]] = {}
        self._lock = threading.Lock()

    def hold(self, line: Line) -> None:
        """The consumer took `line` to speak it (it may wait for a slot): a clear reaches it from now on."""
        with self._lock:
            self._ahead[line.seq] = (line, None)

    def put(self, item: Any) -> None:
        if isinstance(item, tuple):
            line, job = item[0], item[1]
            with self._lock:
                if job is None:
                    self._ahead.pop(line.seq, None)  # a skip: nothing to clear
                else:
                    self._ahead[line.seq] = (line, job)
                cut_meanwhile = job is not None and line.cut is not None
            if cut_meanwhile:
                job.cancel()
        self._items.put(item)

    def ahead(self) -> int:
        """Lines taken to be spoken and not yet taken by the player (not cut)."""
        with self._lock:
            return sum(line.cut is None for line, _ in self._ahead.values())

    def cut_ahead(self, reason: str) -> list[Line]:
        """Cut the lines taken to be spoken that the player has not taken: jobs cancelled, the player skips them."""
        with self._lock:
            cut = [line for line, _ in self._ahead.values() if line.cut is None]
            for line in cut:
                line.cut = reason
            jobs = [job for line, job in self._ahead.values() if line in cut and job is not None]
        for job in jobs:
            job.cancel()
        return cut

    def close(self) -> None:
        """Nothing more comes: the player ends once it gets here (more than one close is harmless)."""
        self._items.put(self._end)

    def get(self) -> Any | None:
        """The next item, waiting for it; None at the end."""
        item = self._items.get()
        return None if item is self._end else item

    def taken(self, line: Line) -> None:
        """The player starts on `line` (waiting no more, for a slot or a resume): a clear no longer reaches it."""
        with self._lock:
            self._ahead.pop(line.seq, None)

    def take_slot(self, letting_go: Callable[[], bool]) -> bool:
        """Wait for room for one more job; False when `letting_go()` turns true meanwhile."""
        while not self._slots.acquire(timeout=0.2):
            if letting_go():
                return False
        return True

    def free_slot(self) -> None:
        self._slots.release()


class ReadLoop:
    """The producer thread: on a file change (or every poll interval), read every file and queue its lines."""

    def __init__(
        self,
        producer: Producer,
        observer: FolderObserver | None,
        lines: LineQueue,
        stop: StopControl,
        opts: WatchOptions,
        wake: threading.Event,
    ) -> None:
        self.producer = producer
        self.observer = observer
        self.lines = lines
        self.stop = stop
        self.opts = opts  # the poll interval is read at each wait
        self.wake = wake  # set by the observer on a file change, and by a stop

    def run(self) -> None:
        while not self.stop.requested.is_set():
            self.wake.wait(self.opts.poll_interval)
            self.wake.clear()
            if self.stop.requested.is_set():
                break
            if self.observer is not None:
                self.observer.rewatch()
            self.producer.poll()
        self.lines.close()


class SubmitLoop:
    """The consumer thread: each queued line to the synthesis worker (or marked skipped), handed to the player."""

    def __init__(
        self,
        lines: LineQueue,
        handoff: Handoff,
        speak: Callable[[str, Line], Any],
        stop: StopControl,
        opts: WatchOptions,
        announcer: Announcer,
    ) -> None:
        self.lines = lines
        self.handoff = handoff
        self.speak = speak  # (text to say, the line it is for) -> a job
        self.stop = stop
        self.opts = opts
        self.announcer = announcer

    def run(self) -> None:
        try:
            while not self.stop.letting_go():
                item = self.lines.get(timeout=0.5)
                if item is None:
                    if self.lines.closed:
                        break
                    continue
                if self.stop.letting_go():
                    break  # not recorded: read again after a restart
                if isinstance(item, Skips):
                    self.handoff.put(item)
                elif not self._submit(item):
                    break
        finally:
            self.handoff.close()

    def _submit(self, line: Line) -> bool:
        """Hand the line to the player: a job synthesizing it, or none if it is skipped; False on a stop."""
        if self.opts.max_age is not None and time.monotonic() - line.read_at > self.opts.max_age:
            line.skip = "too old"
        if line.skip is not None:
            self.handoff.put((line, None, 0.0))
            return True
        self.handoff.hold(line)
        if not self.handoff.take_slot(self.stop.letting_go):
            return False
        if line.cut is not None:  # cleared while it waited for a slot
            self.handoff.free_slot()
            self.handoff.put((line, None, 0.0))
            return True
        try:
            job = self.speak(self.announcer.text(line.text, line.voicing.speaker), line)
        except SpeakError as exc:
            self.handoff.free_slot()
            line.skip = f"error: {exc}"
            self.handoff.put((line, None, 0.0))
            return True
        self.handoff.put((line, job, time.monotonic()))
        return True


class DeliverLoop:
    """The player thread: each line's audio to the sinks, in order, and its offset recorded once it is done with."""

    def __init__(
        self,
        handoff: Handoff,
        deliver: Delivery,
        sinks: Sequence[Sink],
        state: StateFile,
        tally: Tally,
        stop: StopControl,
        control: LiveControl,
    ) -> None:
        self.handoff = handoff
        self.deliver = deliver
        self.sinks = sinks
        self.state = state
        self.tally = tally
        self.stop = stop
        self.control = control

    def run(self) -> None:
        cut = False
        try:
            while (item := self.handoff.get()) is not None:
                if isinstance(item, Skips):
                    if not self.stop.letting_go():
                        for skipped in item.last.values():
                            self.state.record(skipped, time.monotonic(), force=False)
                elif item[1] is not None and (self.stop.letting_go() or not self.control.wait_if_paused()):
                    # Not recorded, nor anything after it: all of it is read again after a restart.
                    item[1].cancel()
                    self.handoff.free_slot()
                elif not self.stop.letting_go():
                    self.handoff.taken(item[0])
                    if not self._handle(*item):
                        cut = True
        finally:
            self.close_sinks(drain=not cut and not self.stop.halted.is_set())

    def _handle(self, line: Line, job: Any, submitted: float) -> bool:
        """Skip or speak one line and record it; False when a stop cut it (then it is not recorded)."""
        if job is None or line.cut is not None:
            if job is not None:  # cut while it waited (a clear): its job is cancelled
                self.handoff.free_slot()
            self.tally.skipped(line, line.cut or line.skip or "skipped")
            self.state.record(line, time.monotonic(), force=line.cut is not None)
            return True
        self.control.speaking(line, job)
        try:
            outcome = self.deliver(line, job, submitted)
        finally:
            self.control.spoken()
            self.handoff.free_slot()
        if outcome == "cut":
            return False
        if outcome == "spoken":
            self.tally.spoken()
        self.state.record(line, time.monotonic(), force=True)
        return True

    def close_sinks(self, drain: bool) -> None:
        for sink in self.sinks:
            sink.close(drain=drain)
