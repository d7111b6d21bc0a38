"""A stand-in audio player for tests of what happens when the device stops taking audio."""

from __future__ import annotations

import threading

import numpy as np


class StalledPlayer:
    """An audio device that stopped pulling audio: writes block until the player is closed."""

    def __init__(self) -> None:
        self.writing = threading.Event()  # set once a write has begun (and blocks)
        self.closed = threading.Event()

    def mark(self) -> int:
        return 0

    def reached(self, index: int) -> float | None:
        return None

    def write(self, chunk: np.ndarray) -> None:
        self.writing.set()
        self.closed.wait(60)

    def wait_until_buffered_below(self, seconds: float, timeout: float | None = None) -> bool:
        return self.closed.wait(60 if timeout is None else timeout)

    def cut(self) -> int:
        return 0

    def played(self) -> int:
        return 0

    def wait_silent(self, timeout: float) -> float | None:
        return None

    def pause(self) -> None:
        pass

    def resume(self) -> None:
        pass

    def close(self, drain: bool = True) -> None:
        self.closed.set()
