"""The `tail -F` follower: one path read a block at a time, through truncation, rotation and rewrites."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import resource
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger("speakcli")

HEAD_BYTES = 256  # the start of a file we remember, to notice it was rewritten in place
READ_BLOCK = 64 * 1024  # read this much at a time, so a huge append never sits in memory whole
MAX_LINE_BYTES = 1 << 20  # a longer line is handed out in parts, so one endless line cannot fill memory
POLL_LINES = 256  # most lines one poll hands out; the rest wait in the file, read when the queue has room
JUMP_SCAN = 4 << 20  # most bytes read back from a file's end to find where its newest lines start
COUNT_BLOCK = 1 << 20  # lines skipped through are counted a block at a time
WARN_EVERY = 60.0  # seconds between two warnings about the same condition
RESERVED_FDS = 32  # descriptors left for the daemon's own files (state, events, output, audio) in folder mode


@dataclass
class RawLine:
    text: str
    path: Path
    start: int
    end: int
    inode: tuple[int, int]
    head: bytes = b""  # the file's first bytes up to `end` (at most HEAD_BYTES): its fingerprint for a restart
    part: int = 0  # > 0: a later part of a line longer than MAX_LINE_BYTES
    skipped: int = 0  # > 0: no line, but this many lines from `start` to `end` skipped through (skip_backlog)


def fingerprint(head: bytes) -> str:
    return hashlib.sha256(head).hexdigest()


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
    bounded whatever is appended. With `keep`, a poll first skips through every unread line but the newest
    `keep` (see `skip_backlog`).
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
        keep: int | None = None,
    ) -> None:
        self.path = path
        self.keep = keep
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

    def skip_backlog(self, keep: int) -> RawLine | None:
        """Skip through the unread lines but the newest `keep` (and a last line still without its newline): one
        RawLine saying how many were skipped, from where to where; None when no more than `keep` wait.

        The newest lines are found by reading back from the end, the skipped ones counted a block at a time: a
        burst of any size is skipped in bounded memory, without handing out its lines.
        """
        fd = self._fh.fileno()
        size = os.fstat(fd).st_size
        floor = max(self.offset, size - JUMP_SCAN)
        pos, seen, land = size, 0, -1
        while pos > floor and land < 0:
            n = min(READ_BLOCK, pos - floor)
            block = os.pread(fd, n, pos - n)
            i = len(block)
            while (i := block.rfind(b"\n", 0, i)) >= 0:
                seen += 1  # the first newline from the end closes the newest complete line
                if seen == keep + 1:
                    land = pos - n + i + 1  # just after the line before the newest `keep`
                    break
            pos -= n
        if land <= self.offset:
            return None
        skipped, at = 0, self.offset
        while at < land:
            n = min(COUNT_BLOCK, land - at)
            skipped += os.pread(fd, n, at).count(b"\n")
            at += n
        start = self.offset
        self.offset = self._read_pos = land
        self._buf = bytearray()
        self._part = 0
        if len(self._head) < HEAD_BYTES:
            self._head = os.pread(fd, min(land, HEAD_BYTES), 0)
        assert self.inode is not None
        return RawLine("", self.path, start, land, self.inode, self._head, skipped=skipped)

    def _read_available(self, out: list[RawLine], now: float, limit: int) -> None:
        if self.keep is not None and (jump := self.skip_backlog(self.keep)) is not None:
            out.append(jump)
            self._last_growth = now
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
