"""The watch daemon's lexicon file, read again when it changes: the next lines are spoken with the new words."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

from speakcli.errors import UsageError
from speakcli.lexicon import Lexicon

if TYPE_CHECKING:
    from speakcli.service import SpeechService
    from speakcli.watch.events import EventLog

log = logging.getLogger("speakcli")

_Stamp = tuple[int, int, int, int] | None  # device, inode, size, mtime (ns); None: the file cannot be seen


def _stamp(path: Path) -> _Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class LexiconFile:
    """Checks the lexicon file before each line (one `stat`) and swaps the service's lexicon when it changed.

    A file that became invalid or unreadable keeps the lexicon in use, told once per change (a `lexicon` event
    with `error`, and a warning); the daemon keeps running. Replacing the file (an editor's save-as-rename),
    editing it in place and touching it are all changes.
    """

    def __init__(self, path: Path, service: SpeechService, events: EventLog) -> None:
        self.path = Path(path).expanduser()
        self.service = service
        self.events = events
        # The service read the file as it opened, just before: a change from now on is a change.
        self._seen = _stamp(self.path)

    def refresh(self) -> None:
        """Read the file again if it changed since it was last read (or tried); on the caller's thread."""
        stamp = _stamp(self.path)  # before reading: a write after it is seen at the next check
        if stamp == self._seen:
            return
        self._seen = stamp
        try:
            lexicon = Lexicon.load(self.path)
        except UsageError as exc:
            log.warning("%s; keeping the lexicon in use", exc)
            self.events.emit("lexicon", file=str(self.path), error=str(exc))
            return
        self.service.use_lexicon(lexicon)
        log.info("lexicon %s read again: %d words", self.path, len(lexicon.entries))
        self.events.emit("lexicon", file=str(self.path), words=len(lexicon.entries))
