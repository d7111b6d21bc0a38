"""Follow text files like `tail -F` and speak each new line: a producer, a consumer and a player thread."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from speakcli.watch.daemon import WatchDaemon
    from speakcli.watch.events import EventLog
    from speakcli.watch.lines import Line, check_encoding
    from speakcli.watch.options import Stats, WatchOptions
    from speakcli.watch.producer import check_target
    from speakcli.watch.sinks import FolderSink, PlayerSink, Sink
    from speakcli.watch.state import StateFile, default_state_file

# Each name from the module holding it, on first use: `watch-control` (a hotkey) needs a socket, not numpy.
_HOMES = {
    "EventLog": "events",
    "FolderSink": "sinks",
    "Line": "lines",
    "PlayerSink": "sinks",
    "Sink": "sinks",
    "StateFile": "state",
    "Stats": "options",
    "WatchDaemon": "daemon",
    "WatchOptions": "options",
    "check_encoding": "lines",
    "check_target": "producer",
    "default_state_file": "state",
}

__all__ = [
    "EventLog",
    "FolderSink",
    "Line",
    "PlayerSink",
    "Sink",
    "StateFile",
    "Stats",
    "WatchDaemon",
    "WatchOptions",
    "check_encoding",
    "check_target",
    "default_state_file",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"speakcli.watch.{_HOMES[name]}"), name)
