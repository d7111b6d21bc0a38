"""How a watch reads, filters, queues and delivers lines; and what it counts."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from speakcli.watch.casting import VoiceMap
from speakcli.watch.parsing import InputFormat
from speakcli.watch.queue import Overflow


@dataclass
class WatchOptions:
    """How lines are read, filtered, queued and delivered."""

    from_start: bool = False
    encoding: str = "utf-8"
    pattern: str = "*.txt"
    flush_partial: float | None = None
    max_chars: int = 500
    long_lines: Literal["split", "truncate"] = "split"
    max_queue: int = 0
    overflow: Overflow = "block"
    max_age: float | None = None
    skip_regex: str | None = None
    ignore_prefixes: tuple[str, ...] = ()
    poll_interval: float = 1.0
    pause: float = 0.2
    drain: bool = False
    output_dir: Path | None = None
    output_format: str = "wav"  # a name from speakcli.audio.encode.AUDIO_FORMATS
    state_file: Path | None = None
    use_watchdog: bool = True
    stop_grace: float = 5.0  # seconds a stop may take to finish the line in progress before its output is cut
    input_format: InputFormat = "text"
    speaker_pattern: str | None = None  # a regex with the named groups speaker and text
    voice_map: VoiceMap | None = None
    auto_voices: bool = False
    voice_pool: tuple[str, ...] = ()  # the voices --auto-voices gives out, in order
    announce: str | None = None  # e.g. "{speaker} says", before a line when the speaker changes
    control: bool = True  # answer watch-control on a socket beside the state file (when there is one)


@dataclass
class Stats:
    """Counts for the status line and the "stopped" event; `skipped` includes `failed` and queue drops."""

    read: int = 0
    spoken: int = 0
    skipped: int = 0
    failed: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:  # bumped from the producer and the player thread
            setattr(self, name, getattr(self, name) + n)
