"""One line's audio, from the worker's job to the sinks: streamed as it comes, then delivered whole."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from speakcli.errors import ModelError, VoiceError
from speakcli.watch.events import EventLog
from speakcli.watch.lines import Line
from speakcli.watch.sinks import Sink

log = logging.getLogger("speakcli")
Outcome = Literal["spoken", "failed", "cut", "skipped"]


@dataclass
class _Take:
    """What came out of a job: its chunks, and when the first and last came."""

    chunks: list[np.ndarray] = field(default_factory=list)
    first_at: float | None = None  # time.monotonic()
    first_wall: float = 0.0
    last_wall: float = 0.0


class Delivery:
    """Speaks lines through the sinks; a line that cannot be synthesized is skipped via `failed`."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        events: EventLog,
        sample_rate: int,
        stopping: Callable[[], bool],
        failed: Callable[[Line, Exception], None],
        skipped: Callable[[Line, dict[str, Any]], None],
    ) -> None:
        self.sinks = sinks
        self.events = events
        self.sample_rate = sample_rate
        self.stopping = stopping  # whether to let go of the line now (a stop without drain, or an abort)
        self.failed = failed
        self.skipped = skipped

    def __call__(self, line: Line, job: Any, submitted: float) -> Outcome:
        """Speak one line: "spoken", "failed" or "skipped" (by a control command: done with, told through
        `failed` or `skipped`) or "cut" (by a stop: not done with)."""
        for sink in self.sinks:
            sink.begin(line)
        take = _Take()
        outcome = self._stream(line, job, take)
        if outcome == "spoken" and line.cut is None:
            self._deliver(line, job, take, submitted)
        if outcome in ("spoken", "skipped") and line.cut is not None:
            details = {"audio_seconds": round(sum(len(c) for c in take.chunks) / self.sample_rate, 3)}
            for sink in self.sinks:
                details.update(sink.cut_details(line))
            self.skipped(line, details)
            return "skipped"
        return outcome

    def _stream(self, line: Line, job: Any, take: _Take) -> Outcome:
        """Feed the job's chunks to the sinks as they come, keeping them in `take`."""
        audio = iter(job)
        try:
            while True:
                if self.stopping():
                    job.cancel()
                    return "cut"
                if line.cut is not None:
                    job.cancel()  # whoever set `cut` cancelled it too; a chunk already made is not played
                    return "skipped"
                try:
                    chunk = next(audio)
                except StopIteration:
                    return "spoken"
                except (ModelError, VoiceError):
                    raise  # the engine cannot speak at all: stop the daemon with that error's exit code
                except Exception as exc:  # this line cannot be synthesized: skip it, record it, never retry it
                    self.failed(line, exc)
                    return "failed"
                take.last_wall = time.time()
                if take.first_at is None:
                    take.first_at, take.first_wall = time.monotonic(), take.last_wall
                for sink in self.sinks:
                    sink.feed(chunk)
                take.chunks.append(chunk)
        finally:
            close = getattr(audio, "close", None)  # a generator: closing it cancels the job if unfinished
            if close is not None:
                close()

    def _deliver(self, line: Line, job: Any, take: _Take, submitted: float) -> None:
        """Report the synthesis, then hand the whole line to each sink."""
        chunks = take.chunks
        seconds = sum(len(c) for c in chunks) / self.sample_rate
        # Worker-side times: how long synthesis took, and how soon its first chunk came (streaming).
        job.done.wait(5)
        self.events.emit(
            "synthesized",
            line,
            seconds=_round(job.elapsed),
            first_chunk=_round(job.first_item_after),
            chunks=job.items,
            queued_to_first_audio=round((take.first_at or time.monotonic()) - submitted, 4),
            first_chunk_time=round(take.first_wall, 6) if chunks else None,
            last_chunk_time=round(take.last_wall, 6) if chunks else None,
            audio_seconds=round(seconds, 3),
        )
        for sink in self.sinks:
            sink.deliver(line, chunks, seconds)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
