"""Live control of a running watch: skip the line being spoken, clear the queue, pause, resume, and say where it is."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from speakcli.errors import UsageError
from speakcli.watch.lines import Line
from speakcli.watch.queue import LineQueue
from speakcli.watch.sinks import PlayerSink, Sink
from speakcli.watch.stopping import StopControl

if TYPE_CHECKING:
    from speakcli.watch.loops import Handoff, Tally

COMMANDS = ("skip", "clear", "pause", "resume", "status")
PAUSE_POLL = 0.2  # seconds between two looks at a stop while paused


class LiveControl:
    """What `watch-control` and SIGUSR1 do to a running daemon; every skipped or cleared line is done with (its
    offset recorded, a `skipped` event with the reason), and a paused line is only held, never dropped.

    - skip: the line being spoken stops now: its job is cancelled and its queued audio dropped; the next plays.
    - clear: every line waiting (queued, or being synthesized ahead) is dropped; the line being spoken goes on.
    - pause: the output holds on silence within the line, and no new line starts; resume goes on from there.
    """

    def __init__(
        self,
        lines: LineQueue,
        handoff: Handoff,
        sinks: Sequence[Sink],
        player: PlayerSink | None,
        tally: Tally,
        stop: StopControl,
    ) -> None:
        self.lines = lines
        self.handoff = handoff
        self.sinks = sinks
        self.player = player
        self.tally = tally
        self.stop = stop
        self.resumed = threading.Event()
        self.resumed.set()
        self._current: tuple[Line, Any] | None = None  # the line the player is on, and its job
        self._lock = threading.Lock()

    @property
    def paused(self) -> bool:
        return not self.resumed.is_set()

    # -- the player thread's side ---------------------------------------------------------------------------
    def speaking(self, line: Line, job: Any) -> None:
        with self._lock:
            self._current = (line, job)

    def spoken(self) -> None:
        with self._lock:
            self._current = None

    def wait_if_paused(self) -> bool:
        """Before a line starts: wait while paused; False when the daemon lets go meanwhile."""
        while not self.resumed.wait(PAUSE_POLL):
            if self.stop.letting_go():
                return False
        return not self.stop.letting_go()

    # -- commands, from the control thread ------------------------------------------------------------------
    def command(self, name: str) -> dict[str, Any]:
        if name not in COMMANDS:
            raise UsageError(f"unknown command {name!r}; use one of: {', '.join(COMMANDS)}")
        result: dict[str, Any] = getattr(self, name)()
        if name != "status":
            self.tally.events.emit("control", command=name, **result)
        return result

    def skip(self) -> dict[str, Any]:
        with self._lock:
            current = self._current
            if current is None:
                return {"skipped": None}
            line, job = current
            if line.cut is None:
                line.cut = "skip"
                job.cancel()
                for sink in self.sinks:
                    sink.cut(line)
        return {"skipped": line.seq}

    def clear(self) -> dict[str, Any]:
        queued = self.lines.clear("cleared")
        for line in queued:
            self.tally.skipped(line, "cleared")  # the player records their offsets when it reaches them
        ahead = self.handoff.cut_ahead("cleared")  # told by the player, which takes them in order
        return {"cleared": len(queued) + len(ahead)}

    def pause(self) -> dict[str, Any]:
        if self.resumed.is_set():
            self.resumed.clear()
            for sink in self.sinks:
                sink.pause()
        return {"state": "paused"}

    def resume(self) -> dict[str, Any]:
        if not self.resumed.is_set():
            for sink in self.sinks:
                sink.resume()
            self.resumed.set()
        return {"state": self._state()}

    def status(self) -> dict[str, Any]:
        with self._lock:
            current = self._current
        line = current[0] if current is not None else None
        stats = self.tally.stats
        return {
            "state": self._state(),
            "line": None if line is None else self._describe(line),
            "queued": len(self.lines) + self.handoff.ahead(),
            "read": stats.read,
            "spoken": stats.spoken,
            "skipped": stats.skipped,
            "dropped": self.lines.dropped,
        }

    def _state(self) -> str:
        if self.paused:
            return "paused"
        with self._lock:
            return "idle" if self._current is None else "speaking"

    def _describe(self, line: Line) -> dict[str, Any]:
        played = self.player.played_seconds(line) if self.player is not None else None
        return {
            "seq": line.seq,
            "text": line.text,
            "speaker": line.voicing.speaker,
            "voice": line.voice,
            "played_seconds": played,
        }
