"""Where spoken lines go: the player and the output folder, each a sink with one interface."""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from speakcli.audio.encode import audio_format, encode
from speakcli.batch import slug
from speakcli.errors import Hint, OutputError
from speakcli.fsutil import temp_name
from speakcli.watch.events import EventLog
from speakcli.watch.lines import Line

_NUMBERED = re.compile(r"(\d+)-")


class Sink(Protocol):
    """Receives a line's audio: `begin`, `feed` each chunk as it comes, then `deliver` the whole line.

    From another thread, `cut` stops a begun line's output now (a skip), and `pause`/`resume` hold the output.
    """

    def begin(self, line: Line) -> None: ...

    def feed(self, chunk: np.ndarray) -> None: ...

    def deliver(self, line: Line, chunks: list[np.ndarray], seconds: float) -> None: ...

    def close(self, drain: bool = False) -> None: ...

    def cut(self, line: Line) -> None: ...

    def cut_details(self, line: Line) -> dict[str, Any]: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...


class PlayerSink:
    """Plays each line as it is synthesized, joined to the next after the pause; emits "played"."""

    def __init__(self, player: Any, sample_rate: int, pause: float, events: EventLog, halt: threading.Event) -> None:
        self.player = player
        self.sample_rate = sample_rate
        self.gap = pause  # seconds of silence after each line
        self.events = events
        self._halt = halt  # set when the daemon stops now: no draining then
        self._mark: int | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._line: Line | None = None  # the line begun last
        self._line_lock = threading.Lock()  # begin and cut come from two threads
        self._cut_frames: int | None = None  # frames of the line played before its cut

    def begin(self, line: Line) -> None:
        with self._line_lock:
            self._line, self._cut_frames = line, None
            self._mark = self.player.mark()

    def feed(self, chunk: np.ndarray) -> None:
        self.player.write(chunk)

    def deliver(self, line: Line, chunks: list[np.ndarray], seconds: float) -> None:
        pause = np.zeros(int(self.gap * self.sample_rate), np.float32)
        if pause.size:
            self.player.write(pause)
        # Hand over while the tail still plays: the next line's audio joins after the pause, no gap.
        self.player.wait_until_buffered_below(0.15 + self.gap)
        if line.cut is not None:
            return  # skipped while its tail played: not played to its end
        started = self.player.reached(self._mark) if self._mark is not None else None
        self.events.emit(
            "played",
            line,
            audio_seconds=round(seconds, 3),
            first_audio=round(started - line.read_at, 4) if started else None,
            first_audio_time=round(line.read_wall + (started - line.read_at), 6) if started else None,
        )

    def played_seconds(self, line: Line) -> float | None:
        """How much of `line` the device has played so far; None if it is not the line begun last."""
        with self._line_lock:
            if self._line is not line or self._mark is None:
                return None
            frames = self._cut_frames if self._cut_frames is not None else self.player.played() - self._mark
        return round(max(0, frames) / self.sample_rate, 3)

    def cut(self, line: Line) -> None:
        """Silence the line now, if it has begun: what is queued of it and the rest of its writes are dropped."""
        with self._line_lock:
            if self._line is line and self._mark is not None and self._cut_frames is None:
                self._cut_frames = max(0, self.player.cut() - self._mark)

    def cut_details(self, line: Line) -> dict[str, Any]:
        """How much of a cut line the device played, and when it fell silent (Unix time; None if not seen in 1 s)."""
        with self._line_lock:
            frames = self._cut_frames if self._line is line else None
        if frames is None:
            return {}
        silent = self.player.wait_silent(1.0)
        return {
            "played_seconds": round(frames / self.sample_rate, 3),
            "silent_time": None if silent is None else round(time.time() - (time.monotonic() - silent), 6),
        }

    def pause(self) -> None:
        self.player.pause()

    def resume(self) -> None:
        self.player.resume()

    def close(self, drain: bool = False) -> None:
        """Close the device; with `drain`, let the last line's tail play first, in slices, while not halted."""
        while drain and not self._halt.is_set() and not self.player.wait_until_buffered_below(0.0, timeout=0.2):
            pass
        with self._lock:  # closed from the player thread, and from an abort in another
            if self._closed:
                return
            self._closed = True
        self.player.close(drain=False)  # unblocks a write or wait on a stalled device


class FolderSink:
    """Writes each line as the next numbered file in a folder (WAV, or `fmt`), never replacing one; emits "written"."""

    def __init__(self, folder: Path, sample_rate: int, events: EventLog, fmt: str = "wav") -> None:
        self.folder = folder
        self.sample_rate = sample_rate
        self.events = events
        self.format = audio_format(fmt)
        self._file_no = 0  # the number of the last output file; continues the numbers already in the folder

    @staticmethod
    def check(folder: Path) -> None:
        """Refuse a folder that is a file, or that cannot be looked up (a name too long), before anything is loaded."""
        try:
            is_file = folder.exists() and not folder.is_dir()
        except OSError as exc:
            raise OutputError(
                f"cannot use output folder {folder} ({exc.strerror or exc})", hint=Hint.OUTPUT_DIR
            ) from None
        if is_file:
            raise OutputError(f"output folder {folder} is a file; pass a folder (it is created if missing)")

    def prepare(self) -> None:
        """Create the folder if missing, and continue its numbering."""
        folder = self.folder
        self.check(folder)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            names = [p.name for p in folder.iterdir()]
        except OSError as exc:
            raise OutputError(
                f"cannot use output folder {folder} ({exc.strerror or exc})", hint=Hint.OUTPUT_DIR
            ) from None
        numbers = [int(m.group(1)) for n in names if not n.startswith(".") and (m := _NUMBERED.match(n))]
        self._file_no = max(numbers, default=0)

    def begin(self, line: Line) -> None:
        pass

    def feed(self, chunk: np.ndarray) -> None:
        pass

    def deliver(self, line: Line, chunks: list[np.ndarray], seconds: float) -> None:
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        out = self._write(line, audio)
        self.events.emit("written", line, file=str(out), audio_seconds=round(seconds, 3))

    def close(self, drain: bool = False) -> None:
        pass

    def cut(self, line: Line) -> None:
        pass  # a file is written once its line is complete: a line cut before that gets none

    def cut_details(self, line: Line) -> dict[str, Any]:
        return {}

    def pause(self) -> None:
        pass  # lines wait at the daemon's pause; a file being written is finished

    def resume(self) -> None:
        pass

    def _write(self, line: Line, audio: np.ndarray) -> Path:
        """Write the line as the next numbered file; never replaces a file (an earlier run's, or another writer's)."""
        data = encode(audio, self.sample_rate, self.format)
        while True:
            self._file_no += 1
            out = self.folder / f"{self._file_no:06d}-{_file_slug(line.text)}{self.format.extensions[0]}"
            try:
                _write_new(out, data)
                return out
            except FileExistsError:
                continue
            except OSError as exc:
                self._file_no -= 1
                raise OutputError(
                    f"cannot write {out} ({exc.strerror or exc}); free some space", hint=Hint.OUTPUT_DIR
                ) from None


def _file_slug(text: str) -> str:
    """batch's slug, 32 characters long; a line with nothing to slug is named "line" (batch says "item")."""
    name = slug(text, 32)
    return "line" if name == "item" and "item" not in text.lower() else name


def _write_new(path: Path, data: bytes) -> None:
    """Create `path` holding `data` in one step, or raise FileExistsError: a temp file, then a hard link.

    Like atomic_write (the umask's mode, fsync, no half file), but it never replaces an existing file.
    """
    tmp = path.parent / temp_name(path.name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if `path` exists, atomically
        except FileExistsError:
            raise
        except OSError:  # a file system without hard links: check, then rename (racy only against other writers)
            if path.exists():
                raise FileExistsError(path) from None
            os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
