"""A write-only file that hands out its bytes as they come, for encoders that write to a file (libsndfile, PyAV)."""

from __future__ import annotations

import io
from typing import Any


class ByteSink(io.RawIOBase):
    """A write-only file for libsndfile and PyAV that hands out what has been written since the last `take`."""

    def __init__(self) -> None:
        self._pending = bytearray()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._pending += bytes(data)
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        # Stream formats never rewrite what was written; libsndfile only asks where the end is.
        return self._pos

    def tell(self) -> int:
        return self._pos

    def take(self) -> bytes:
        out, self._pending = bytes(self._pending), bytearray()
        return out
