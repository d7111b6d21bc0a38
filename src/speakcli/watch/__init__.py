"""Follow text files like `tail -F` and speak each new line: a producer, a consumer and a player thread."""

from speakcli.watch.daemon import WatchDaemon
from speakcli.watch.events import EventLog
from speakcli.watch.follower import POLL_LINES, READ_BLOCK, Follower, RawLine
from speakcli.watch.lines import Line, LineMaker, check_encoding
from speakcli.watch.options import Stats, WatchOptions
from speakcli.watch.producer import check_target
from speakcli.watch.queue import LineQueue, Overflow, Skips
from speakcli.watch.sinks import FolderSink, PlayerSink, Sink
from speakcli.watch.state import StateFile, default_state_file

__all__ = [
    "POLL_LINES",
    "READ_BLOCK",
    "EventLog",
    "FolderSink",
    "Follower",
    "Line",
    "LineMaker",
    "LineQueue",
    "Overflow",
    "PlayerSink",
    "RawLine",
    "Sink",
    "Skips",
    "StateFile",
    "Stats",
    "WatchDaemon",
    "WatchOptions",
    "check_encoding",
    "check_target",
    "default_state_file",
]
