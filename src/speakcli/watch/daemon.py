"""The watch daemon: builds the read, submit and deliver loops over one target, runs them on threads, stops them."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speakcli.errors import OutputError
from speakcli.watch.casting import Announcer, Casting
from speakcli.watch.channel import ControlServer, socket_path
from speakcli.watch.control import LiveControl
from speakcli.watch.delivery import Delivery
from speakcli.watch.events import EventLog
from speakcli.watch.follower import Warnings
from speakcli.watch.lines import Line, LineMaker
from speakcli.watch.loops import DeliverLoop, Handoff, Intake, ReadLoop, SubmitLoop, Tally
from speakcli.watch.observer import FolderObserver, absolute
from speakcli.watch.options import Stats, WatchOptions
from speakcli.watch.parsing import LineParser
from speakcli.watch.producer import Producer, check_target
from speakcli.watch.queue import LineQueue
from speakcli.watch.sinks import FolderSink, PlayerSink, Sink
from speakcli.watch.state import StateFile, remove_own_temps
from speakcli.watch.stopping import StopControl
from speakcli.watch.threads import DaemonThreads

log = logging.getLogger("speakcli")


class WatchDaemon:
    """Follows one target (a file, or a folder's matching files) and speaks each new line: a producer thread reads,
    a consumer submits lines to the worker through `speak`, a player hands their audio to the sinks."""

    def __init__(
        self,
        target: Path,
        speak: Callable[[str, Line], Any],
        sample_rate: int,
        options: WatchOptions,
        player: Any = None,
        events: EventLog | None = None,
    ) -> None:
        self.target = target
        self.opts = options
        self.events = events or EventLog(None)
        check_target(target)
        self.is_dir = target.is_dir()
        self.stats = Stats()
        self.queue = LineQueue(options.max_queue, options.overflow)
        self.state = StateFile(options.state_file)
        self.stopping = StopControl(options)
        self.finished = threading.Event()
        self.warnings = Warnings()
        self.folder_sink = (
            FolderSink(options.output_dir, sample_rate, self.events, options.output_format)
            if options.output_dir
            else None
        )
        player_sink = (
            PlayerSink(player, sample_rate, options.pause, self.events, self.stopping.halted)
            if player is not None
            else None
        )
        # Written in this order: the "written" event comes before "played".
        sinks: list[Sink] = [s for s in (self.folder_sink, player_sink) if s is not None]
        tally = Tally(self.stats, self.events)
        wake = threading.Event()
        sock = socket_path(options.state_file) if options.state_file is not None and options.control else None
        own, own_dirs = self._own_paths(target if self.is_dir else target.parent, sock)
        self.observer = (
            FolderObserver(target, self.is_dir, options.pattern, own, own_dirs, wake, self.warnings)
            if options.use_watchdog
            else None
        )
        casting = Casting(
            options.voice_map, options.voice_pool, options.auto_voices, self.state.voices, self.state.remember_voice
        )
        maker = LineMaker(
            options.max_chars,
            options.long_lines,
            options.ignore_prefixes,
            options.skip_regex,
            LineParser(options.input_format, options.speaker_pattern),
            casting,
        )
        intake = Intake(self.queue, tally, self.stopping, options.overflow)
        self.producer = Producer(
            target, self.is_dir, options, own, self.state, maker, self.warnings, self.stopping.requested, intake
        )
        self._handoff = Handoff()
        self.control = LiveControl(self.queue, self._handoff, sinks, player_sink, tally, self.stopping)
        self.control_server = ControlServer(sock, self.control.command)
        self.reader = ReadLoop(self.producer, self.observer, self.queue, self.stopping, options, wake)
        announcer = Announcer(options.announce)
        self._submitter = SubmitLoop(self.queue, self._handoff, speak, self.stopping, options, announcer)
        delivery = Delivery(
            sinks,
            self.events,
            sample_rate,
            self.stopping.letting_go,
            tally.failed,
            lambda line, details: tally.skipped(line, line.cut or "skip", **details),
        )
        self._deliverer = DeliverLoop(self._handoff, delivery, sinks, self.state, tally, self.stopping, self.control)
        self._threads = DaemonThreads(self._failed)
        for name, loop in (("producer", self.reader), ("consumer", self._submitter), ("player", self._deliverer)):
            self._threads.add(name, loop.run)
        if self.events.path is not None:
            remove_own_temps(self.events.path)

    def _own_paths(self, parent: Path, sock: Path | None) -> tuple[set[Path], set[Path]]:
        """The daemon's own files and folders: never followed, and their writes never wake the producer."""
        mine = (self.state.path, self.state.lock_path, self.events.path, sock)
        own = {absolute(p) for p in mine if p is not None}
        # An output folder of its own is the daemon's; one shared with the watched files only holds its temps.
        out = absolute(self.opts.output_dir) if self.opts.output_dir is not None else None
        return own, {out} if out is not None and out != absolute(parent) else set()

    @property
    def error(self) -> BaseException | None:
        """The first error that stopped the daemon (for the caller to report, once), if any."""
        return self._threads.error

    def start(self) -> None:
        if self.folder_sink is not None:
            self.folder_sink.prepare()
        self.producer.discover(initial=True)
        if self.observer is not None:
            self.observer.start()
        self.control_server.start()
        self.events.emit("started", target=str(self.target), offsets=self.producer.offsets())
        self._threads.start()

    def stop(self) -> None:
        """Stop reading; finish the line being spoken (with `drain`, everything queued) and exit.

        Without `drain`, a line still being spoken `stop_grace` seconds later is cut (see `join`); a line cut or
        not yet spoken is not recorded, so it is read again after a restart. Paused, the daemon stops at once:
        nothing is being spoken, and what waits is spoken after a restart.
        """
        self.stopping.request()
        self.reader.wake.set()
        if self.control.paused:
            self._halt()

    def abort(self) -> None:
        """Stop now: cancel the line in progress and cut playback; nothing unfinished is recorded."""
        self.stopping.request()
        self.reader.wake.set()
        self._halt()

    def _halt(self) -> None:
        self.stopping.halt()
        self.queue.close()
        self._deliverer.close_sinks(drain=False)

    def _failed(self, exc: BaseException) -> None:
        """A thread failed: stop every thread now (the error is reported by whoever joins)."""
        self.abort()
        self._handoff.close()  # the player may be waiting for work the consumer will never send

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the threads (True when all ended); cuts the output of a stop that takes past `stop_grace`."""

        def cut_a_slow_stop() -> None:
            if self.stopping.past_grace():
                log.warning(
                    "the line in progress did not finish within %.0f s of the stop; cutting it", self.opts.stop_grace
                )
                self.abort()

        if not self._threads.join(timeout, cut_a_slow_stop):
            return False
        self._shutdown()
        return True

    def stuck(self) -> bool:
        """Whether a thread is still stuck in the system (a hung disk) well after a stop cut the output."""
        return self.stopping.stuck()

    def give_up(self) -> None:
        """Leave threads stuck in the system (a hung disk) behind: save what was finished and report stopped."""
        self._shutdown()

    def _shutdown(self) -> None:
        if self.finished.is_set():
            return
        self.finished.set()
        self.control_server.close()
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
            if self.error is None:
                raise
