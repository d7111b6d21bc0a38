"""Wakes the producer when a followed file changes (watchdog): never on the daemon's own writes."""

from __future__ import annotations

import fnmatch
import os
import threading
from pathlib import Path
from typing import Any

from speakcli.watch.follower import Warnings
from speakcli.watch.state import is_temp_of


class FolderObserver:
    """Watches the folder holding the target; sets `wake` on a change that may mean new lines."""

    def __init__(
        self,
        target: Path,
        is_dir: bool,
        pattern: str,
        own: set[Path],
        own_dirs: set[Path],
        wake: threading.Event,
        warnings: Warnings,
    ) -> None:
        self.target = target
        self.is_dir = is_dir
        self.pattern = pattern
        self.own = own  # the daemon's own files and
        self.own_dirs = own_dirs  # folders: their writes never wake the producer
        self.wake = wake
        self.warnings = warnings
        self.folder = target if is_dir else target.parent
        self._watched: tuple[int, int] | None = None  # the folder the observer watches (dev, inode)
        self._observer: Any = None
        self._handler: Any = None

    def start(self) -> None:
        from watchdog.events import FileSystemEventHandler
        from watchdog.observers import Observer

        concerns_us, folder_gone = self.concerns_us, self._folder_gone
        folder = absolute(self.folder)
        wake = self.wake

        class Poke(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                # Handlers only signal; the producer thread does the reading.
                if event.event_type in ("deleted", "moved") and absolute(Path(os.fsdecode(event.src_path))) == folder:
                    folder_gone()
                elif concerns_us(event.src_path) or (event.dest_path and concerns_us(event.dest_path)):
                    wake.set()

        self._observer = Observer()
        self._handler = Poke()
        self.rewatch()
        self._observer.start()

    def stop(self) -> None:
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(5)

    def rewatch(self) -> None:
        """(Re)point the observer at the folder: one deleted and made again is a new folder to the kernel."""
        try:
            st = os.stat(self.folder)
        except OSError:
            self._watched = None  # gone: a later pass watches it again once it is back
            return
        if (st.st_dev, st.st_ino) == self._watched:
            return
        self._observer.unschedule_all()
        try:
            self._observer.schedule(self._handler, str(self.folder), recursive=False)
        except OSError as exc:  # e.g. out of inotify watches: polling still works
            self.warnings.warn("observer", "cannot watch %s for changes (%s); polling instead", self.folder, exc)
            return
        self._watched = (st.st_dev, st.st_ino)

    def _folder_gone(self) -> None:
        # Its watch died with it, and a folder made again may reuse the inode number: watch anew.
        self._watched = None
        self.wake.set()

    def concerns_us(self, path: str | bytes) -> bool:
        """Whether a change to `path` may mean new lines: a followed path, never the daemon's own writes."""
        p = absolute(Path(os.fsdecode(path)))
        if p in self.own or p.parent in self.own_dirs or any(is_temp_of(p, own) for own in self.own):
            return False
        if self.is_dir:
            return p.parent == absolute(self.target) and fnmatch.fnmatch(p.name, self.pattern)
        return p == absolute(self.target)


def absolute(path: Path) -> Path:
    """An absolute path without resolving symlinks (a followed symlink is its own path)."""
    return Path(os.path.abspath(path))
