"""Follow text files like `tail -F` and speak each new line: a producer, a consumer and a player thread."""

from speakcli.watch.daemon import WatchDaemon
from speakcli.watch.events import EventLog
from speakcli.watch.lines import Line, check_encoding
from speakcli.watch.options import Stats, WatchOptions
from speakcli.watch.producer import check_target
from speakcli.watch.sinks import FolderSink, PlayerSink, Sink
from speakcli.watch.state import StateFile, default_state_file

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
