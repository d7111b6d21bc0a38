"""The queue between producer and consumer: bounded in lines to speak, with overflow policies, O(1)."""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from speakcli.watch.lines import Line

Overflow = Literal["block", "drop-oldest", "drop-newest"]


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

    def clear(self, reason: str) -> list[Line]:
        """Drop every line waiting to be spoken (now skipped for `reason`); returns them, oldest first.

        They stay in the queue as one Skips entry, so the player records their offsets in order.
        """
        with self._lock:
            cleared: list[Line] = []
            merged = Skips()
            for item in self._items:
                if isinstance(item, Skips):
                    merged.last.update(item.last)  # in order: a newer line wins per file
                else:
                    item.skip = reason
                    merged.add(item)
                    cleared.append(item)
            self._items.clear()
            if merged.last:
                self._items.append(merged)
            self._speakable = 0
            self._not_full.notify_all()
            self._not_empty.notify()
        return cleared

    def count_dropped(self, n: int) -> None:
        """Count lines dropped before they were queued (skipped through at once, see Follower.skip_backlog)."""
        with self._lock:
            self.dropped += n

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
