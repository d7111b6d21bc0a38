"""The watch daemon: a producer reads files, a consumer submits lines to the worker, a player hands audio to sinks."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speakcli.errors import OutputError, SpeakError
from speakcli.watch.delivery import Delivery
from speakcli.watch.events import EventLog
from speakcli.watch.follower import Warnings
from speakcli.watch.lines import Line, LineMaker
from speakcli.watch.observer import FolderObserver, absolute
from speakcli.watch.options import Stats, WatchOptions
from speakcli.watch.producer import Producer, check_target
from speakcli.watch.queue import LineQueue, Skips
from speakcli.watch.sinks import FolderSink, PlayerSink, Sink
from speakcli.watch.state import StateFile, remove_own_temps

log = logging.getLogger("speakcli")


_CLOSED = object()  # the consumer's last hand-off: the player ends on it


class WatchDaemon:
    """Runs the producer, consumer and player threads over one target, and stops them (gracefully or now)."""

    def __init__(
        self,
        target: Path,
        speak: Callable[[str], Any],
        sample_rate: int,
        options: WatchOptions,
        player: Any = None,
        events: EventLog | None = None,
    ) -> None:
        self.target = target
        self.speak = speak
        self.sample_rate = sample_rate
        self.opts = options
        self.events = events or EventLog(None)
        check_target(target)
        self.is_dir = target.is_dir()
        parent = target if self.is_dir else target.parent
        self.stats = Stats()
        self.queue = LineQueue(options.max_queue, options.overflow)
        self.state = StateFile(options.state_file)
        self.stop_event = threading.Event()
        self.stop_requested_at: float | None = None
        self.finished = threading.Event()
        self._halt = threading.Event()  # stop now: cut the line in progress (a failed thread, or past stop_grace)
        self._wake = threading.Event()
        self._handoff: queue.Queue[Any] = queue.Queue()  # consumer -> player: (line, job, submitted) or Skips
        self._in_flight = threading.Semaphore(2)  # one line playing, one being synthesized ahead
        self._threads: list[threading.Thread] = []
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self.warnings = Warnings()
        self.folder_sink = (
            FolderSink(options.output_dir, sample_rate, self.events, options.output_format)
            if options.output_dir
            else None
        )
        self.player_sink = (
            PlayerSink(player, sample_rate, options.pause, self.events, self._halt) if player is not None else None
        )
        # Written in this order: the "written" event comes before "played".
        self.sinks: list[Sink] = [s for s in (self.folder_sink, self.player_sink) if s is not None]
        self._deliver = Delivery(self.sinks, self.events, sample_rate, self._stopping, self._failed)
        own, own_dirs = self._own_paths(parent)
        self.observer = (
            FolderObserver(target, self.is_dir, options.pattern, own, own_dirs, self._wake, self.warnings)
            if options.use_watchdog
            else None
        )
        maker = LineMaker(options.max_chars, options.long_lines, options.ignore_prefixes, options.skip_regex)
        self.producer = Producer(
            target, self.is_dir, options, own, self.state, maker, self.warnings, self.stop_event, self._enqueue
        )
        if self.events.path is not None:
            remove_own_temps(self.events.path)

    def _own_paths(self, parent: Path) -> tuple[set[Path], set[Path]]:
        """The daemon's own files and folders: never followed, and their writes never wake the producer."""
        own = {absolute(p) for p in (self.state.path, self.state.lock_path, self.events.path) if p is not None}
        # An output folder of its own is the daemon's; one shared with the watched files only holds its temps.
        out = absolute(self.opts.output_dir) if self.opts.output_dir is not None else None
        return own, {out} if out is not None and out != absolute(parent) else set()

    @property
    def polls(self) -> int:
        """Producer passes over the files, for tests and status."""
        return self.producer.polls

    @property
    def polled(self) -> threading.Condition:
        return self.producer.polled

    # -- lifecycle -----------------------------------------------------------------------------------

    def start(self) -> None:
        if self.folder_sink is not None:
            self.folder_sink.prepare()
        self.producer.discover(initial=True)
        for name, fn in (("producer", self._produce), ("consumer", self._consume), ("player", self._play)):
            t = threading.Thread(target=self._guard(fn), name=f"speakcli-watch-{name}", daemon=True)
            self._threads.append(t)
        if self.observer is not None:
            self.observer.start()
        self.events.emit("started", target=str(self.target), offsets=self.producer.offsets())
        for t in self._threads:
            t.start()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # a broken thread stops the daemon instead of hanging it
                self._fail(exc)

        return run

    def _fail(self, exc: BaseException) -> None:
        """Keep the first error (the caller reports it, once) and stop every thread now."""
        with self._error_lock:
            if self._error is None:
                self._error = exc
        log.debug("watch thread failed: %s: %s", type(exc).__name__, exc)
        self.abort()
        self._handoff.put(_CLOSED)  # the player may be waiting for work the consumer will never send

    def wait_polls(self, n: int, timeout: float = 10.0) -> bool:
        """Wait until the producer has made `n` more passes over the files (a poke each, so no waiting out the poll)."""
        deadline = time.monotonic() + timeout
        with self.polled:
            target = self.polls + n
            while self.polls < target:
                self._wake.set()
                if (
                    not self.polled.wait(max(0.0, min(0.2, deadline - time.monotonic())))
                    and time.monotonic() > deadline
                ):
                    return False
        return True

    def stop(self) -> None:
        """Stop reading; finish the line being spoken (with `drain`, everything queued) and exit.

        Without `drain`, a line still being spoken `stop_grace` seconds later is cut (see `join`); a line cut or
        not yet spoken is not recorded, so it is read again after a restart.
        """
        if self.stop_requested_at is None:
            self.stop_requested_at = time.monotonic()
        self.stop_event.set()
        self._wake.set()

    def abort(self) -> None:
        """Stop now: cancel the line in progress and cut playback; nothing unfinished is recorded."""
        self.stop()
        self._halt.set()
        self.queue.close()
        self._close_sinks(drain=False)

    def _stopping(self) -> bool:
        """Whether the consumer and player should let go of their line now."""
        return self._halt.is_set() or (self.stop_event.is_set() and not self.opts.drain)

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads (True when all ended); cuts the output of a stop that takes past `stop_grace`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            alive = [t for t in self._threads if t.is_alive()]
            if not alive:
                break
            at, grace = self.stop_requested_at, self.opts.stop_grace
            if at is not None and not self.opts.drain and not self._halt.is_set() and time.monotonic() - at > grace:
                log.warning("the line in progress did not finish within %.0f s of the stop; cutting it", grace)
                self.abort()
            left = 0.1 if deadline is None else min(0.1, deadline - time.monotonic())
            if left <= 0:
                return False
            alive[0].join(left)
        self._shutdown()
        return True

    def _shutdown(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        if self.observer is not None:
            self.observer.stop()
        self.producer.close()
        self.state.flush()
        self.state.close()
        try:
            self.events.emit(
                "stopped",
                spoken=self.stats.spoken,
                skipped=self.stats.skipped,
                dropped=self.queue.dropped,
                failed=self.stats.failed,
            )
        except OutputError:
            if self._error is None:
                raise

    def stuck(self) -> bool:
        """Whether a thread is still stuck in the system (a hung disk) well after a stop cut the output."""
        at = self.stop_requested_at
        return at is not None and not self.opts.drain and time.monotonic() - at >= self.opts.stop_grace + 5

    def give_up(self) -> None:
        """Leave threads stuck in the system (a hung disk) behind: save what was finished and report stopped."""
        self._shutdown()

    @property
    def error(self) -> BaseException | None:
        return self._error

    # -- producer ----------------------------------------------------------------------------------

    def _produce(self) -> None:
        while not self.stop_event.is_set():
            self._wake.wait(self.opts.poll_interval)
            self._wake.clear()
            if self.stop_event.is_set():
                break
            if self.observer is not None:
                self.observer.rewatch()
            self.producer.poll()
        self.queue.close()

    def _enqueue(self, line: Line) -> None:
        self.stats.add("read")
        self.events.emit("read", line, file=str(line.path), offset=line.start, text=line.text)
        dropped = self.queue.put(line, self.stop_event)
        if dropped is not None:  # LineQueue counts drops; this says which line
            log.warning("queue full: dropped line %d (%s)", dropped.seq, self.opts.overflow)
        if line.skip is not None and line is not dropped:
            self._skipped(line, line.skip)
        if dropped is not None:
            self._skipped(dropped, "overflow")

    def _skipped(self, line: Line, reason: str) -> None:
        self.stats.add("skipped")
        self.events.emit("skipped", line, reason=reason)

    # -- consumer ----------------------------------------------------------------------------------

    def _take_slot(self) -> bool:
        """Wait for the player to have room for one more job; False when the daemon stops meanwhile."""
        while not self._in_flight.acquire(timeout=0.2):
            if self._stopping():
                return False
        return True

    def _consume(self) -> None:
        try:
            while not self._stopping():
                item = self.queue.get(timeout=0.5)
                if item is None:
                    if self.queue.closed:
                        break
                    continue
                if self._stopping():
                    break  # not recorded: read again after a restart
                if isinstance(item, Skips):
                    self._handoff.put(item)
                elif not self._submit(item):
                    break
        finally:
            self._handoff.put(_CLOSED)

    def _submit(self, line: Line) -> bool:
        """Hand the line to the player: a job synthesizing it, or none if it is skipped; False on a stop."""
        if self.opts.max_age is not None and time.monotonic() - line.read_at > self.opts.max_age:
            line.skip = "too old"
        if line.skip is not None:
            self._handoff.put((line, None, 0.0))
            return True
        if not self._take_slot():
            return False
        try:
            job = self.speak(line.text)
        except SpeakError as exc:
            self._in_flight.release()
            line.skip = f"error: {exc}"
            self._handoff.put((line, None, 0.0))
            return True
        self._handoff.put((line, job, time.monotonic()))
        return True

    # -- player ------------------------------------------------------------------------------------

    def _play(self) -> None:
        cut = False
        try:
            while (item := self._handoff.get()) is not _CLOSED:
                if self._stopping():
                    # Not recorded, nor anything after it: all of it is read again after a restart.
                    if not isinstance(item, Skips) and item[1] is not None:
                        item[1].cancel()
                        self._in_flight.release()
                elif isinstance(item, Skips):
                    for skipped in item.last.values():
                        self.state.record(skipped, time.monotonic(), force=False)
                elif not self._handle(*item):
                    cut = True
        finally:
            self._close_sinks(drain=not cut and not self._halt.is_set())

    def _handle(self, line: Line, job: Any, submitted: float) -> bool:
        """Skip or speak one line and record it; False when a stop cut it (then it is not recorded)."""
        if job is None:
            self._skipped(line, line.skip or "skipped")
            self.state.record(line, time.monotonic(), force=False)
            return True
        try:
            outcome = self._deliver(line, job, submitted)
        finally:
            self._in_flight.release()
        if outcome == "cut":
            return False
        if outcome == "spoken":
            self.stats.add("spoken")
        self.state.record(line, time.monotonic(), force=True)
        return True

    def _failed(self, line: Line, exc: Exception) -> None:
        self.stats.add("failed")
        log.warning("line %d failed: %s", line.seq, " ".join(str(exc).split()) or type(exc).__name__)
        self._skipped(line, f"error: {exc}" if isinstance(exc, SpeakError) else f"error: {exc!r}")

    def _close_sinks(self, drain: bool) -> None:
        for sink in self.sinks:
            sink.close(drain=drain)
