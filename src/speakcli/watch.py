"""Follow text files like `tail -F` and speak each new line: a producer, a consumer and a player thread."""

from __future__ import annotations

import codecs
import contextlib
import errno
import fcntl
import fnmatch
import hashlib
import json
import logging
import os
import queue
import re
import resource
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from speakcli import dirs
from speakcli.errors import ModelError, OutputError, SpeakError, UsageError, VoiceError
from speakcli.fsutil import PART_SUFFIX, atomic_write, temp_name

log = logging.getLogger("speakcli")

HEAD_BYTES = 256  # the start of a file we remember, to notice it was rewritten in place
READ_BLOCK = 64 * 1024  # read this much at a time, so a huge append never sits in memory whole
MAX_LINE_BYTES = 1 << 20  # a longer line is handed out in parts, so one endless line cannot fill memory
POLL_LINES = 256  # most lines one poll hands out; the rest wait in the file, read when the queue has room
WARN_EVERY = 60.0  # seconds between two warnings about the same condition
RESERVED_FDS = 32  # descriptors left for the daemon's own files (state, events, output, audio) in folder mode
Overflow = Literal["block", "drop-oldest", "drop-newest"]


@dataclass
class RawLine:
    text: str
    path: Path
    start: int
    end: int
    inode: tuple[int, int]
    head: bytes = b""  # the file's first bytes up to `end` (at most HEAD_BYTES): its fingerprint for a restart
    part: int = 0  # > 0: a later part of a line longer than MAX_LINE_BYTES


@dataclass
class Line:
    """One line read from a file, in order; `skip` says why it will not be spoken."""

    seq: int
    text: str
    path: Path
    start: int
    end: int
    inode: tuple[int, int]
    read_at: float  # time.monotonic()
    read_wall: float
    skip: str | None = None
    head: bytes = b""  # see RawLine.head


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


def check_encoding(name: str) -> str:
    """The codec name, if lines can be split on b"\\n" in it (UTF-8 and single-byte encodings)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise UsageError(f"unknown encoding {name!r}; use e.g. utf-8, latin-1, cp1252") from None
    if "\n".encode(info.name) != b"\n":
        raise UsageError(f"encoding {name!r} is not line-compatible (UTF-16/32); convert the file to UTF-8")
    return info.name


class Warnings:
    """Logs a warning once per condition, then at most every WARN_EVERY s: a warning must never feed itself."""

    def __init__(self, every: float = WARN_EVERY) -> None:
        self.every = every
        self._last: dict[str, float] = {}
        self._lock = threading.Lock()

    def warn(self, key: str, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self.every:
                return
            self._last[key] = now
        log.warning(message, *args)

    def clear(self, key: str) -> None:
        """The condition is over: warn again at once if it comes back."""
        with self._lock:
            self._last.pop(key, None)


class OpenFiles:
    """How many followed files may be held open at once: the open-file limit less what the daemon needs itself."""

    def __init__(self, limit: int | None = None) -> None:
        if limit is None:
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            soft = 1 << 20 if soft == resource.RLIM_INFINITY else soft
            try:
                in_use = len(os.listdir("/proc/self/fd"))
            except OSError:
                in_use = 64
            limit = soft - in_use - RESERVED_FDS
        self.limit = max(1, limit)
        self.held = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.held >= self.limit:
                return False
            self.held += 1
            return True

    def give(self) -> None:
        with self._lock:
            self.held -= 1


_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFDIR: "a folder", stat.S_IFCHR: "a device", stat.S_IFBLK: "a device"}


class Follower:
    """Follows one path like `tail -F`: partial lines wait, truncation and rotation are handled, offsets tracked.

    Only regular files are followed: anything else at the path (a FIFO, a device, a folder) is waited out like
    a missing file. Reads go a block at a time and a poll hands out at most `limit` lines, so memory stays
    bounded whatever is appended.
    """

    def __init__(
        self,
        path: Path,
        encoding: str = "utf-8",
        from_start: bool = False,
        resume: dict[str, Any] | None = None,
        flush_partial: float | None = None,
        warnings: Warnings | None = None,
        open_files: OpenFiles | None = None,
    ) -> None:
        self.path = path
        self.encoding = encoding
        self.from_start = from_start
        self.resume = resume
        self.flush_partial = flush_partial
        self.warnings = warnings or Warnings()
        self.open_files = open_files
        self._fh: Any = None
        self.inode: tuple[int, int] | None = None
        self.offset = 0  # end of the last complete line handed out
        self._read_pos = 0  # bytes read into the buffer
        self._buf = bytearray()
        self._part = 0  # parts of the current over-long line handed out so far
        self._head = b""
        self._last_growth = time.monotonic()
        self._opened_before = False
        self._was_missing = False
        self.more = False  # the last poll stopped at its limit: poll again without waiting

    # -- opening ------------------------------------------------------------------------------------

    def _start_offset(self, fh: Any, size: int, inode: tuple[int, int]) -> int:
        if self._opened_before or self._was_missing:
            return 0  # a new file after rotation, or one created after we started: all of it is new
        if self.resume is not None:
            offset = int(self.resume["offset"])
            if tuple(self.resume["inode"]) == inode and size >= offset:
                head = self.resume.get("head")
                if head is None:  # a state file from before fingerprints
                    return offset
                fh.seek(0)
                if fingerprint(fh.read(int(self.resume["head_len"]))) == head:
                    return offset
                log.warning("%s was truncated or rewritten while stopped; reading it from the start", self.path)
            return 0  # rotated or replaced while we were away: the file at the path is new
        if self.from_start or size == 0:
            return 0
        # Start at the end, but at a line start, so a line being written is spoken whole once complete.
        back = min(size, 64 * 1024)
        fh.seek(size - back)
        tail = fh.read(back)
        cut = tail.rfind(b"\n")
        if cut >= 0:
            return size - back + cut + 1
        # No newline at all: the whole file is one unfinished line (wait for it); else a huge line: skip it.
        return 0 if back == size else size

    def _open(self) -> bool:
        key = f"open {self.path}"
        if self.open_files is not None and not self.open_files.take():
            self.warnings.warn(
                "open-file limit",
                "more files to follow than the open-file limit allows (%d held open); raise it (ulimit -n) "
                "or watch fewer files: the others wait",
                self.open_files.held,
            )
            return False
        try:
            # O_NONBLOCK: opening a FIFO must not wait for a writer; it is refused below anyway.
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if self.open_files is not None:
                self.open_files.give()
            if isinstance(exc, (FileNotFoundError, NotADirectoryError)):
                self._was_missing = True
            elif exc.errno in (errno.EMFILE, errno.ENFILE):
                self.warnings.warn("open-file limit", "cannot open %s: %s; raise ulimit -n", self.path, exc.strerror)
            else:
                self.warnings.warn(key, "cannot open %s: %s; waiting for it", self.path, exc.strerror)
            return False
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            if self.open_files is not None:
                self.open_files.give()
            kind = _KINDS.get(stat.S_IFMT(st.st_mode), "not a regular file")
            self.warnings.warn(key, "%s is %s; only regular files are followed: waiting for one", self.path, kind)
            self._was_missing = True  # a regular file that appears later is new: read it whole
            return False
        self.warnings.clear(key)
        fh = os.fdopen(fd, "rb")
        inode = (st.st_dev, st.st_ino)
        start = self._start_offset(fh, st.st_size, inode)
        self._fh, self.inode = fh, inode
        self.offset = self._read_pos = start
        self._buf = bytearray()
        self._part = 0
        fh.seek(0)
        self._head = fh.read(min(start, HEAD_BYTES))
        self._opened_before = True
        self._last_growth = time.monotonic()
        return True

    def open_now(self) -> None:
        if self._fh is None:
            self._open()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
            if self.open_files is not None:
                self.open_files.give()

    # -- reading ------------------------------------------------------------------------------------

    def _decode(self, raw: bytes, start: int, whole: bool) -> str:
        text = raw.decode(self.encoding, errors="replace")
        if start == 0 and text.startswith("\ufeff"):
            text = text[1:]
        return text[:-1] if whole and text.endswith("\r") else text

    def _emit(self, out: list[RawLine], raw: bytes, consumed: int, whole: bool = True) -> None:
        start = self.offset
        self.offset += consumed
        assert self.inode is not None
        if len(self._head) < HEAD_BYTES and self.offset > len(self._head):
            pos = self._fh.tell()
            self._fh.seek(0)
            self._head = self._fh.read(min(self.offset, HEAD_BYTES))
            self._fh.seek(pos)
        text = self._decode(raw, start, whole)
        out.append(RawLine(text, self.path, start, self.offset, self.inode, self._head, self._part))
        self._part = 0 if whole else self._part + 1

    def _long_cut(self) -> int:
        """Where to cut a line longer than MAX_LINE_BYTES: after a space, else not inside a UTF-8 character."""
        window = self._buf[:MAX_LINE_BYTES]
        space = window.rfind(b" ")
        if space >= MAX_LINE_BYTES // 2:
            return space + 1
        cut = MAX_LINE_BYTES
        if self.encoding == "utf-8":
            while cut > 1 and self._buf[cut] & 0xC0 == 0x80:
                cut -= 1
        return cut

    def _take_lines(self, out: list[RawLine], limit: int) -> None:
        pos = 0
        while len(out) < limit:
            cut = self._buf.find(b"\n", pos)
            if cut >= 0:
                self._emit(out, bytes(self._buf[pos:cut]), cut + 1 - pos)
                pos = cut + 1
                continue
            if len(self._buf) - pos <= MAX_LINE_BYTES:
                break
            del self._buf[:pos]
            pos = self._long_cut()
            self._emit(out, bytes(self._buf[:pos]), pos, whole=False)
        del self._buf[:pos]

    def _read_available(self, out: list[RawLine], now: float, limit: int) -> None:
        self._take_lines(out, limit)
        while len(out) < limit:
            self._fh.seek(self._read_pos)
            data = self._fh.read(READ_BLOCK)
            if not data:
                self.more = False
                return
            self._read_pos += len(data)
            self._buf += data
            self._last_growth = now
            self._take_lines(out, limit)
        self.more = True

    def _flush(self, out: list[RawLine]) -> None:
        if self._buf:
            raw = bytes(self._buf)
            self._buf = bytearray()
            self._emit(out, raw, len(raw))

    def _rewritten(self) -> bool:
        size = os.fstat(self._fh.fileno()).st_size
        if size < self._read_pos:
            return True
        if self._head:
            self._fh.seek(0)
            return bool(self._fh.read(len(self._head)) != self._head)
        return False

    def poll(self, now: float | None = None, limit: int = POLL_LINES) -> list[RawLine]:
        """Complete lines added since the last poll, in file order: at most `limit`; `more` says if some wait."""
        now = time.monotonic() if now is None else now
        out: list[RawLine] = []
        self.more = False
        if self._fh is None and not self._open():
            return out
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            current = None
        if current != self.inode:
            # Rotated or deleted: finish the old file through the handle we hold, then switch.
            self._read_available(out, now, limit)
            if self.more:
                return out
            self._flush(out)
            self.close()
            if current is not None and self._open():
                self._read_available(out, now, limit)
            return out
        if self._rewritten():
            log.warning("%s was truncated or rewritten; reading it from the start", self.path)
            self.offset = self._read_pos = 0
            self._buf = bytearray()
            self._head = b""
            self._part = 0
        self._read_available(out, now, limit)
        if self.flush_partial is not None and self._buf and now - self._last_growth >= self.flush_partial:
            self._flush(out)
        return out


# -- the queue between producer and consumer ----------------------------------------------------------


@dataclass
class Skips:
    """Lines handled without speaking, folded into one queue entry: the newest line of each file, to record."""

    last: dict[Path, Line] = field(default_factory=dict)

    def add(self, line: Line) -> None:
        self.last[line.path] = line


class LineQueue:
    """An ordered queue whose size limit counts only lines to speak; every operation is O(1).

    Lines that will not be spoken (skipped, or dropped for overflow) are folded into one `Skips` entry between
    two lines to speak, so they keep their place for the state file without growing the queue: it never holds
    more than 2 * maxsize + 1 entries, and the oldest line to speak is always first or second.
    """

    def __init__(self, maxsize: int = 0, overflow: Overflow = "block") -> None:
        self.maxsize = maxsize
        self.overflow = overflow
        self._items: deque[Line | Skips] = deque()
        self._speakable = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closed = False
        self.dropped = 0

    def __len__(self) -> int:
        with self._lock:
            return self._speakable

    @property
    def entries(self) -> int:
        """Entries held, lines to speak and Skips together (what the queue costs in memory)."""
        with self._lock:
            return len(self._items)

    @property
    def closed(self) -> bool:
        return self._closed

    def _fold(self, line: Line) -> None:
        tail = self._items[-1] if self._items else None
        if isinstance(tail, Skips):
            tail.add(line)
        else:
            self._items.append(Skips({line.path: line}))

    def _drop_oldest(self) -> Line:
        # No two Skips are adjacent, so the oldest line to speak is first, or second behind one Skips.
        head = self._items.popleft()
        if isinstance(head, Skips):
            oldest = self._items.popleft()
            assert isinstance(oldest, Line)
        else:
            oldest, head = head, Skips()
        oldest.skip = "overflow"
        head.add(oldest)
        nxt = self._items[0] if self._items else None
        if isinstance(nxt, Skips):
            self._items.popleft()
            head.last.update(nxt.last)  # newer, so its lines win per file
        self._items.appendleft(head)
        self._speakable -= 1
        return oldest

    def put(self, line: Line, stop: threading.Event) -> Line | None:
        """Add a line; returns the line dropped for overflow (now skipped as "overflow"), if any."""
        dropped = None
        with self._lock:
            if line.skip is None and self.maxsize > 0 and self._speakable >= self.maxsize:
                if self.overflow == "block":
                    while self._speakable >= self.maxsize and not stop.is_set() and not self._closed:
                        self._not_full.wait(0.5)
                elif self.overflow == "drop-newest":
                    line.skip, dropped = "overflow", line
                else:
                    dropped = self._drop_oldest()
            if line.skip is None:
                self._items.append(line)
                self._speakable += 1
            else:
                self._fold(line)
            if dropped is not None:
                self.dropped += 1
            self._not_empty.notify()
        return dropped

    def get(self, timeout: float | None = None) -> Line | Skips | None:
        """The next entry, or None when closed and empty (or on timeout)."""
        with self._lock:
            while not self._items:
                if self._closed or not self._not_empty.wait(timeout):
                    return None
            item = self._items.popleft()
            if isinstance(item, Line):
                self._speakable -= 1
                self._not_full.notify()
            return item

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._not_empty.notify_all()
            self._not_full.notify_all()


# -- state and events -----------------------------------------------------------------------------------


def default_state_file(target: Path) -> Path:
    digest = hashlib.sha256(str(target.resolve()).encode()).hexdigest()[:16]
    return dirs.state_dir() / "watch" / f"{target.name[:40]}-{digest}.json"


class StateFile:
    """Per-file offset of the last line fully handled, written atomically (temp file, rename).

    A lock file beside it (flock, released when the process ends, however) keeps a second daemon off the same
    state; each entry keeps the file's inode and a fingerprint of its first bytes, to notice a file rewritten
    in place while no daemon ran.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.files: dict[str, dict[str, Any]] = {}
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
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise UsageError(
                f"cannot create the lock file {lock_path} ({exc.strerror}); pass another --state-file"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip()
            os.close(fd)
            raise UsageError(
                f"another speakcli watch (pid {holder or '?'}) already uses the state file {path}; "
                "stop it first, or give this one its own --state-file"
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

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._write(time.monotonic())

    def _write(self, now: float) -> None:
        self._dirty, self._last_write = False, now
        if self.path is None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # No fsync: a renamed file survives a killed process, and state is rewritten after every line.
            atomic_write(self.path, json.dumps({"version": 1, "files": self.files}).encode(), fsync=False)
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


class EventLog:
    """One JSON object per line per event, to a file or stdout, and to in-process listeners."""

    def __init__(self, target: str | None) -> None:
        self._lock = threading.Lock()
        self._fh: Any = None
        self._own = False
        self.path: Path | None = None  # the file written, so the daemon never follows or wakes on it
        self.target = target
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        if target == "-":
            import sys

            self._fh = sys.stdout
        elif target:
            try:
                self._fh = open(target, "a", encoding="utf-8")  # noqa: SIM115 - held open for the daemon's life
            except OSError as exc:
                raise OutputError(
                    f"cannot open the events file {target} ({exc.strerror or exc}); "
                    "create its folder or pass another --events path"
                ) from None
            self._own = True
            self.path = Path(target)
        self._file = self._fh if self._own else None

    def emit(self, event: str, line: Line | None = None, **fields: Any) -> None:
        record: dict[str, Any] = {"event": event, "time": round(time.time(), 6)}
        if line is not None:
            record["seq"] = line.seq
        record.update(fields)
        with self._lock:
            if self._fh is not None:
                try:
                    self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
                    self._fh.flush()
                except (OSError, ValueError) as exc:
                    self._fh = None  # reported once; the daemon stops on it
                    raise OutputError(
                        f"cannot write the events file {self.target} ({getattr(exc, 'strerror', None) or exc}); "
                        "free some space or pass another --events path"
                    ) from None
            for listener in self.listeners:
                listener(record)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()


# -- the daemon ------------------------------------------------------------------------------------------


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
    state_file: Path | None = None
    use_watchdog: bool = True
    stop_grace: float = 5.0  # seconds a stop may take to finish the line in progress before its output is cut


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


_CLOSED = object()
_NUMBERED = re.compile(r"(\d+)-")


class WatchDaemon:
    """Producer (reads files), consumer (submits lines to the synthesis worker), player (plays or writes)."""

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
        self.player = player
        self.events = events or EventLog(None)
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
        self._player_lock = threading.Lock()
        self._player_closed = False
        self._file_no = 0  # the number of the last output file; continues the numbers already in the folder
        self._followers: dict[Path, Follower] = {}
        self._seq = 0
        self._skip_re = re.compile(options.skip_regex) if options.skip_regex else None
        self._threads: list[threading.Thread] = []
        self._observer: Any = None
        self._error: BaseException | None = None
        self._error_lock = threading.Lock()
        self.polls = 0  # producer passes over the files, for tests and status
        self.polled = threading.Condition()
        self.is_dir = target.is_dir()
        parent = target if self.is_dir else target.parent
        if not parent.is_dir():
            raise UsageError(f"folder {parent} does not exist; create it or watch another file")
        self.warnings = Warnings()
        self.open_files = OpenFiles() if self.is_dir else None
        self._watched: tuple[int, int] | None = None  # the folder the observer watches (dev, inode)
        # The daemon's own files: never followed, and their writes never wake the producer.
        own = [self.state.path, self.state.lock_path, self.events.path]
        self._own = {_absolute(p) for p in own if p is not None}
        # An output folder of its own is the daemon's; one shared with the watched files only holds its temps.
        out = _absolute(options.output_dir) if options.output_dir is not None else None
        self._own_dirs = {out} if out is not None and out != _absolute(parent) else set()
        self._line_skip: dict[Path, str | None] = {}  # why the line whose later parts are still coming is skipped
        if self.events.path is not None:
            remove_own_temps(self.events.path)

    # -- lifecycle -----------------------------------------------------------------------------------

    def _prepare_output_dir(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--output-dir {folder} is a file; pass a folder (it is created if missing)")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            names = [p.name for p in folder.iterdir()]
        except OSError as exc:
            raise OutputError(
                f"cannot use --output-dir {folder} ({exc.strerror or exc}); pass another folder"
            ) from None
        numbers = [int(m.group(1)) for n in names if not n.startswith(".") and (m := _NUMBERED.match(n))]
        self._file_no = max(numbers, default=0)

    def start(self) -> None:
        if self.opts.output_dir is not None:
            self._prepare_output_dir(self.opts.output_dir)
        self._discover(initial=True)
        for name, fn in (("producer", self._produce), ("consumer", self._consume), ("player", self._play)):
            t = threading.Thread(target=self._guard(fn), name=f"speakcli-watch-{name}", daemon=True)
            self._threads.append(t)
        if self.opts.use_watchdog:
            self._start_observer()
        offsets = {str(p): f.offset for p, f in self._followers.items()}
        self.events.emit("started", target=str(self.target), offsets=offsets)
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

    def _start_observer(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        wake, concerns_us, folder_gone = self._wake, self._concerns_us, self._folder_gone
        folder = _absolute(self.target if self.is_dir else self.target.parent)

        class Poke(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                # Handlers only signal; the producer thread does the reading.
                if event.event_type in ("deleted", "moved") and _absolute(Path(os.fsdecode(event.src_path))) == folder:
                    folder_gone()
                elif concerns_us(event.src_path) or (event.dest_path and concerns_us(event.dest_path)):
                    wake.set()

        self._observer = Observer()
        self._poke = Poke()
        self._watch_folder()
        self._observer.start()

    def _watch_folder(self) -> None:
        """(Re)point the observer at the folder: one deleted and made again is a new folder to the kernel."""
        folder = self.target if self.is_dir else self.target.parent
        try:
            st = os.stat(folder)
        except OSError:
            self._watched = None  # gone: a later pass watches it again once it is back
            return
        if (st.st_dev, st.st_ino) == self._watched:
            return
        self._observer.unschedule_all()
        try:
            self._observer.schedule(self._poke, str(folder), recursive=False)
        except OSError as exc:  # e.g. out of inotify watches: polling still works
            self.warnings.warn("observer", "cannot watch %s for changes (%s); polling instead", folder, exc)
            return
        self._watched = (st.st_dev, st.st_ino)

    def _folder_gone(self) -> None:
        # Its watch died with it, and a folder made again may reuse the inode number: watch anew.
        self._watched = None
        self._wake.set()

    def _concerns_us(self, path: str | bytes) -> bool:
        """Whether a change to `path` may mean new lines: a followed path, never the daemon's own writes."""
        p = _absolute(Path(os.fsdecode(path)))
        if p in self._own or p.parent in self._own_dirs or any(_is_temp_of(p, own) for own in self._own):
            return False
        if self.is_dir:
            return p.parent == _absolute(self.target) and fnmatch.fnmatch(p.name, self.opts.pattern)
        return p == _absolute(self.target)

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
        self._close_player()

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
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)
        for follower in self._followers.values():
            follower.close()
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

    def give_up(self) -> None:
        """Leave threads stuck in the system (a hung disk) behind: save what was finished and report stopped."""
        self._shutdown()

    @property
    def error(self) -> BaseException | None:
        return self._error

    # -- producer ----------------------------------------------------------------------------------

    def _discover(self, initial: bool = False) -> None:
        if self.is_dir:
            try:
                entries = sorted(self.target.iterdir())
            except OSError as exc:
                self.warnings.warn("folder", "cannot list %s (%s); waiting for it", self.target, exc.strerror)
                return
            self.warnings.clear("folder")
            paths = [
                p
                for p in entries
                if fnmatch.fnmatch(p.name, self.opts.pattern) and _absolute(p) not in self._own and _is_file(p)
            ]
        else:
            paths = [self.target]
        for path in paths:
            if path not in self._followers:
                resume = self.state.resume_for(path)
                # In a folder, a file that appears after start is all new; files there at start follow --from-start.
                from_start = self.opts.from_start or (self.is_dir and not initial)
                follower = Follower(
                    path,
                    self.opts.encoding,
                    from_start,
                    resume,
                    self.opts.flush_partial,
                    self.warnings,
                    self.open_files,
                )
                if initial:
                    follower.open_now()  # fix "the end" now, so lines written before the first poll count
                self._followers[path] = follower

    def _produce(self) -> None:
        stop = self.stop_event
        while not stop.is_set():
            self._wake.wait(self.opts.poll_interval)
            self._wake.clear()
            if stop.is_set():
                break
            if self._observer is not None:
                self._watch_folder()
            if self.is_dir:
                self._discover()
            # A poll hands out a bounded number of lines and the queue blocks when full: memory stays bounded.
            while self._read_round():
                pass
            with self.polled:
                self.polls += 1
                self.polled.notify_all()
        self.queue.close()

    def _read_round(self) -> bool:
        """One poll of every file, its lines queued; whether some file has more waiting."""
        more = False
        for follower in list(self._followers.values()):
            for line in (line for raw in follower.poll() for line in self._lines(raw)):
                if self.stop_event.is_set():
                    return False  # the rest is not queued, nor recorded: read again after a restart
                self._enqueue(line)
            more = more or follower.more
        return more and not self.stop_event.is_set()

    def _lines(self, raw: RawLine) -> Iterator[Line]:
        from speakcli.text import has_speech

        now, wall = time.monotonic(), time.time()
        text = raw.text.strip()
        skip = None
        if raw.part > 0:  # a later part of an over-long line: skipped if the line is, cut off if truncating
            skip = self._line_skip.get(raw.path) or ("truncated" if self.opts.long_lines == "truncate" else None)
            if skip is None and not text:
                skip = "empty"
        elif not text:
            skip = "empty"
        elif any(text.startswith(p) for p in self.opts.ignore_prefixes):
            skip = "ignored prefix"
        elif self._skip_re is not None and self._skip_re.search(text):
            skip = "skip regex"
        elif not has_speech(text):
            skip = "nothing to say"  # only punctuation or symbols: an engine would make noise of it
        if raw.part == 0:
            self._line_skip[raw.path] = None if skip == "empty" else skip
        # Lazily: a 1 MB line is a long job for the sentence splitter, and a stop must not wait for all of it.
        pieces = self._pieces(text) if skip is None else iter([text])
        held = next(pieces, text)
        for piece in pieces:
            yield self._line(raw, held, raw.start, skip, now, wall)
            held = piece
        # Only the last piece carries the line's end offset: a restart mid-line repeats the line, never skips it.
        yield self._line(raw, held, raw.end, skip, now, wall)

    def _line(self, raw: RawLine, text: str, end: int, skip: str | None, now: float, wall: float) -> Line:
        self._seq += 1
        return Line(self._seq, text, raw.path, raw.start, end, raw.inode, now, wall, skip, raw.head)

    def _pieces(self, text: str) -> Iterator[str]:
        limit = self.opts.max_chars
        if len(text) <= limit:
            yield text
        elif self.opts.long_lines == "truncate":
            yield text[:limit]
        else:
            from speakcli.text import has_speech, split_text

            for window in _windows(text, max(4096, 8 * limit)):
                # A piece with no letter or digit is not said: engines vocalise such pieces as noise.
                yield from (p for p in split_text(window, "en", limit) if has_speech(p))

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
                    continue
                line = item
                if self.opts.max_age is not None and time.monotonic() - line.read_at > self.opts.max_age:
                    line.skip = "too old"
                if line.skip is not None:
                    self._handoff.put((line, None, 0.0))
                    continue
                if not self._take_slot():
                    break
                try:
                    job = self.speak(line.text)
                except SpeakError as exc:
                    self._in_flight.release()
                    line.skip = f"error: {exc}"
                    self._handoff.put((line, None, 0.0))
                    continue
                self._handoff.put((line, job, time.monotonic()))
        finally:
            self._handoff.put(_CLOSED)

    # -- player ------------------------------------------------------------------------------------

    def _play(self) -> None:
        cut = False
        try:
            while True:
                item = self._handoff.get()
                if item is _CLOSED:
                    break
                if self._stopping():
                    # Not recorded, nor anything after it: all of it is read again after a restart.
                    if not isinstance(item, Skips) and item[1] is not None:
                        item[1].cancel()
                        self._in_flight.release()
                    continue
                if isinstance(item, Skips):
                    for skipped in item.last.values():
                        self.state.record(skipped, time.monotonic(), force=False)
                    continue
                line, job, submitted = item
                if job is None:
                    self._skipped(line, line.skip or "skipped")
                    self.state.record(line, time.monotonic(), force=False)
                    continue
                try:
                    handled = self._deliver(line, job, submitted)
                finally:
                    self._in_flight.release()
                if handled:
                    self.state.record(line, time.monotonic(), force=True)
                else:
                    cut = True
        finally:
            self._finish_playback(drain=not cut and not self._halt.is_set())

    def _finish_playback(self, drain: bool) -> None:
        if self.player is None:
            return
        # Let the last line's tail play, in slices, so an abort (a stalled device) still gets through.
        while drain and not self._halt.is_set() and not self.player.wait_until_buffered_below(0.0, timeout=0.2):
            pass
        self._close_player()

    def _close_player(self) -> None:
        with self._player_lock:
            if self.player is None or self._player_closed:
                return
            self._player_closed = True
        self.player.close(drain=False)  # unblocks a write or wait on a stalled device

    def _deliver(self, line: Line, job: Any, submitted: float) -> bool:
        """Speak one line; True when it is done with (spoken, or failed and skipped), False when cut by a stop."""
        chunks: list[np.ndarray] = []
        mark = self.player.mark() if self.player is not None else None
        first_at: float | None = None
        first_wall = last_wall = 0.0
        audio = iter(job)
        try:
            while True:
                if self._stopping():
                    job.cancel()
                    return False
                try:
                    chunk = next(audio)
                except StopIteration:
                    break
                except (ModelError, VoiceError):
                    raise  # the engine cannot speak at all: stop the daemon with that error's exit code
                except Exception as exc:  # this line cannot be synthesized: skip it, record it, never retry it
                    self.stats.add("failed")
                    log.warning("line %d failed: %s", line.seq, " ".join(str(exc).split()) or type(exc).__name__)
                    self._skipped(line, f"error: {exc}" if isinstance(exc, SpeakError) else f"error: {exc!r}")
                    return True
                last_wall = time.time()
                if first_at is None:
                    first_at, first_wall = time.monotonic(), last_wall
                if self.player is not None:
                    self.player.write(chunk)
                chunks.append(chunk)
        finally:
            close = getattr(audio, "close", None)  # a generator: closing it cancels the job if unfinished
            if close is not None:
                close()
        seconds = sum(len(c) for c in chunks) / self.sample_rate
        # Worker-side times: how long synthesis took, and how soon its first chunk came (streaming).
        job.done.wait(5)
        self.events.emit(
            "synthesized",
            line,
            seconds=_round(job.elapsed),
            first_chunk=_round(job.first_item_after),
            chunks=job.items,
            queued_to_first_audio=round((first_at or time.monotonic()) - submitted, 4),
            first_chunk_time=round(first_wall, 6) if chunks else None,
            last_chunk_time=round(last_wall, 6) if chunks else None,
            audio_seconds=round(seconds, 3),
        )
        if self.opts.output_dir is not None:
            out = self._write_output(line, np.concatenate(chunks) if chunks else np.zeros(0, np.float32))
            self.events.emit("written", line, file=str(out), audio_seconds=round(seconds, 3))
        if self.player is not None:
            pause = np.zeros(int(self.opts.pause * self.sample_rate), np.float32)
            if pause.size:
                self.player.write(pause)
            # Hand over while the tail still plays: the next line's audio joins after the pause, no gap.
            self.player.wait_until_buffered_below(0.15 + self.opts.pause)
            started = self.player.reached(mark) if mark is not None else None
            self.events.emit(
                "played",
                line,
                audio_seconds=round(seconds, 3),
                first_audio=round(started - line.read_at, 4) if started else None,
                first_audio_time=round(line.read_wall + (started - line.read_at), 6) if started else None,
            )
        self.stats.add("spoken")
        return True

    def _write_output(self, line: Line, audio: np.ndarray) -> Path:
        """Write the line as the next numbered WAV; never replaces a file (an earlier run's, or another writer's)."""
        import io

        import soundfile as sf

        assert self.opts.output_dir is not None
        buf = io.BytesIO()
        sf.write(buf, np.clip(audio, -1.0, 1.0), self.sample_rate, format="WAV", subtype="PCM_16")
        while True:
            self._file_no += 1
            out = self.opts.output_dir / f"{self._file_no:06d}-{_slug(line.text)}.wav"
            try:
                _write_new(out, buf.getvalue())
                return out
            except FileExistsError:
                continue
            except OSError as exc:
                self._file_no -= 1
                raise OutputError(
                    f"cannot write {out} ({exc.strerror or exc}); free some space or pass another --output-dir"
                ) from None


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


def _windows(text: str, size: int) -> Iterator[str]:
    """`text` in runs of at most `size` characters, cut after a sentence's end where there is one, else at a space."""
    pos = 0
    while len(text) - pos > size:
        window = text[pos : pos + size]
        cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "))
        if cut < size // 2:
            cut = window.rfind(" ")
        cut = cut + 1 if cut > 0 else size
        yield text[pos : pos + cut]
        pos += cut
    yield text[pos:]


def _absolute(path: Path) -> Path:
    """An absolute path without resolving symlinks (a followed symlink is its own path)."""
    return Path(os.path.abspath(path))


def _is_temp_of(path: Path, own: Path) -> bool:
    return path.parent == own.parent and bool(_temp_pattern(own).fullmatch(path.name))


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


_SLUG_RE = re.compile(r"[^a-z0-9]+")


def _slug(text: str, n: int = 32) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-")[:n].strip("-") or "line"


__all__ = [
    "EventLog",
    "Follower",
    "Line",
    "LineQueue",
    "StateFile",
    "WatchDaemon",
    "WatchOptions",
    "check_encoding",
    "default_state_file",
]
