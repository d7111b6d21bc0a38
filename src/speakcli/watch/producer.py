"""The producer's work: find the files to follow, poll them, and hand out their lines in order."""

from __future__ import annotations

import fnmatch
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from speakcli.errors import UsageError
from speakcli.watch.follower import Follower, OpenFiles, RawLine, Warnings
from speakcli.watch.lines import Line, LineMaker
from speakcli.watch.observer import absolute
from speakcli.watch.options import WatchOptions
from speakcli.watch.state import StateFile


def check_target(target: Path) -> None:
    """Refuse a target whose folder does not exist (a missing file in an existing folder is waited for)."""
    folder = target if target.is_dir() else target.parent
    if not folder.is_dir():
        raise UsageError(f"folder {folder} does not exist; create it or watch another file")


class Producer:
    """Follows the target (a file, or the matching files of a folder) and passes each new line to `enqueue`."""

    def __init__(
        self,
        target: Path,
        is_dir: bool,
        options: WatchOptions,
        own: set[Path],
        state: StateFile,
        maker: LineMaker,
        warnings: Warnings,
        stop: threading.Event,
        enqueue: Callable[[Line], None],
    ) -> None:
        self.target = target
        self.is_dir = is_dir
        self.opts = options
        self.own = own  # the daemon's own files: never followed
        self.state = state
        self.maker = maker
        self.warnings = warnings
        self.stop = stop
        self.enqueue = enqueue
        self.open_files = OpenFiles() if is_dir else None
        self.followers: dict[Path, Follower] = {}

    def offsets(self) -> dict[str, int]:
        return {str(p): f.offset for p, f in self.followers.items()}

    def close(self) -> None:
        for follower in self.followers.values():
            follower.close()

    def discover(self, initial: bool = False) -> None:
        """Start following the files not followed yet."""
        for path in self._paths():
            if path not in self.followers:
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
                    keep=self._keep(),
                )
                if initial:
                    follower.open_now()  # fix "the end" now, so lines written before the first poll count
                self.followers[path] = follower

    def _keep(self) -> int | None:
        """Under drop-oldest, a backlog is skipped through to its newest lines: the rest would be dropped anyway."""
        return self.opts.max_queue if self.opts.overflow == "drop-oldest" and self.opts.max_queue > 0 else None

    def _paths(self) -> list[Path]:
        if not self.is_dir:
            return [self.target]
        try:
            entries = sorted(self.target.iterdir())
        except OSError as exc:
            self.warnings.warn("folder", "cannot list %s (%s); waiting for it", self.target, exc.strerror)
            return []
        self.warnings.clear("folder")
        return [
            p
            for p in entries
            if fnmatch.fnmatch(p.name, self.opts.pattern) and absolute(p) not in self.own and _is_file(p)
        ]

    def poll(self) -> None:
        """One pass: new files found, every file read until it has nothing more (or a stop)."""
        if self.is_dir:
            self.discover()
        # A poll hands out a bounded number of lines and the queue blocks when full: memory stays bounded.
        while self._read_round():
            pass

    def _read_round(self) -> bool:
        """One poll of every file, its lines queued; whether some file has more waiting."""
        more = False
        for follower in list(self.followers.values()):
            for line in (line for raw in follower.poll() for line in self._lines(raw)):
                if self.stop.is_set():
                    return False  # the rest is not queued, nor recorded: read again after a restart
                self.enqueue(line)
            more = more or follower.more
        return more and not self.stop.is_set()

    def _lines(self, raw: RawLine) -> Iterator[Line]:
        if raw.skipped:
            yield self.maker.jump(raw)
        else:
            yield from self.maker.lines(raw)


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:
        return False
