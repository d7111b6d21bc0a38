"""The state file: per-file offset of the last line handled, and the lock that keeps one daemon on it."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from speakcli import dirs
from speakcli.errors import Hint, UsageError
from speakcli.fsutil import PART_SUFFIX, atomic_write, temp_name
from speakcli.watch.casting import MAX_SPEAKERS
from speakcli.watch.follower import fingerprint
from speakcli.watch.lines import Line

log = logging.getLogger("speakcli")


def default_state_file(target: Path) -> Path:
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return dirs.state_dir() / "watch" / f"{target.name[:40]}-{digest}.json"


class StateFile:
    """Per-file offset of the last line fully handled, and the voice given to each speaker (`--auto-voices`),
    written atomically (temp file, rename).

    A lock file beside it (flock, released when the process ends, however) keeps a second daemon off the same
    state; each entry keeps the file's inode and a fingerprint of its first bytes, to notice a file rewritten
    in place while no daemon ran.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
        self.voices: dict[str, str] = {}  # speaker -> voice, given automatically
        self._lock = threading.Lock()
        self._dirty = False
        self._last_write = 0.0
        self._lock_fd: int | None = None
        if path is None:
            return
        self._take_lock(path)
        remove_own_temps(path)  # left by a daemon killed while writing; no one else writes these names
        if path.exists():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                log.warning("state file %s is unreadable (%s); starting without it", path, exc)
                return
            voices = data.get("voices") if isinstance(data, dict) else None
            if isinstance(voices, dict):
                self.voices = {k: v for k, v in voices.items() if isinstance(k, str) and isinstance(v, str)}
            files = data.get("files") if isinstance(data, dict) else None
            if not isinstance(files, dict):
                log.warning("state file %s has no 'files' table; starting without it", path)
                return
            self.files = {str(k): v for k, v in files.items() if _valid_entry(v)}
            if len(self.files) < len(files):
                log.warning(
                    "state file %s: %d malformed entries ignored (those files start afresh)",
                    path,
                    len(files) - len(self.files),
                )

    @property
    def lock_path(self) -> Path | None:
        return None if self.path is None else self.path.with_name(self.path.name + ".lock")

    def _take_lock(self, path: Path) -> None:
        lock_path = path.with_name(path.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)  # private: the control socket goes here
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UsageError(
                f"cannot create the lock file {lock_path} ({exc.strerror})", hint=Hint.STATE_FILE
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise UsageError(
                f"another speakcli watch (pid {holder or '?'}) already uses the state file {path}; stop it first",
                hint=Hint.STATE_FILE,
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (the lock file stays: removing it would race with a daemon about to take it)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def resume_for(self, path: Path) -> dict[str, Any] | None:
        return self.files.get(str(path.resolve()))

    def record(self, line: Line, now: float, force: bool) -> None:
        with self._lock:
            self.files[str(line.path.resolve())] = {
                "inode": list(line.inode),
                "offset": line.end,
                "seq": line.seq,
                "head": fingerprint(line.head),
                "head_len": len(line.head),
            }
            self._dirty = True
            # Spoken lines are written at once; runs of skipped lines at most 5 times a second.
            if force or now - self._last_write > 0.2:
                self._write(now)

    def remember_voice(self, speaker: str, voice: str) -> None:
        """Keep the voice a speaker was given. Written at most 5 times a second, as skipped lines are (a flood of
        new names must not rewrite the file for each), and always with the record of the line it was given for,
        which is written at once when spoken: a kill before that reads the line again, and gives the same voice."""
        with self._lock:
            self.voices.pop(speaker, None)  # re-given: now the newest
            self.voices[speaker] = voice
            while len(self.voices) > MAX_SPEAKERS:  # as Casting forgets: the one given a voice longest ago
                del self.voices[next(iter(self.voices))]
            self._dirty = True
            now = time.monotonic()
            if now - self._last_write > 0.2:
                self._write(now)

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._dirty, self._last_write = False, now
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # No fsync: a renamed file survives a killed process, and state is rewritten after every line.
            data = {"version": 1, "files": self.files, "voices": self.voices}
            atomic_write(self.path, json.dumps(data).encode(), fsync=False)
        except OSError as exc:
            log.warning("cannot write state file %s: %s", self.path, exc)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _valid_entry(entry: Any) -> bool:
    """Whether a state entry has the shape `record` writes (a hand-edited or foreign file may not)."""
    if not isinstance(entry, dict):
        return False
    inode, offset = entry.get("inode"), entry.get("offset")
    if not (isinstance(inode, list) and len(inode) == 2 and all(_is_count(i) for i in inode)):
        return False
    if not _is_count(offset):
        return False
    if "head" in entry:
        return isinstance(entry["head"], str) and _is_count(entry.get("head_len"))
    return True


def _temp_pattern(path: Path) -> re.Pattern[str]:
    """The names `atomic_write(path)` gives its temp files (fsutil.temp_name), and no others."""
    sample = temp_name(path.name)
    prefix = sample[: -len(".00000000" + PART_SUFFIX)]
    return re.compile(re.escape(prefix) + r"\.[0-9a-f]{8}" + re.escape(PART_SUFFIX))


def remove_own_temps(path: Path) -> int:
    """Remove the temps `atomic_write(path)` left when killed: only that name's, never other programs' files."""
    own = _temp_pattern(path)
    n = 0
    try:
        names = os.listdir(path.parent)
    except OSError:
        return 0
    for name in names:
        if own.fullmatch(name):
            with contextlib.suppress(OSError):
                os.unlink(path.parent / name)
                n += 1
    return n


def is_temp_of(path: Path, own: Path) -> bool:
    """Whether `path` is one of the temps `atomic_write(own)` makes."""
    return path.parent == own.parent and bool(_temp_pattern(own).fullmatch(path.name))
