"""The JSON event log: one object per line per event, to a file or stdout, and to in-process listeners."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from speakcli.errors import Hint, OutputError
from speakcli.watch.lines import Line


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
                    f"cannot open the events file {target} ({exc.strerror or exc}); create its folder",
                    hint=Hint.EVENTS_PATH,
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
                        "free some space",
                        hint=Hint.EVENTS_PATH,
                    ) from None
            for listener in self.listeners:
                listener(record)

    def close(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
