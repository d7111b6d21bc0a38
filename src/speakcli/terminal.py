"""The standard streams a command reads and writes, and which of them is a terminal: one injectable place."""

from __future__ import annotations

import contextlib
import io
import sys
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import BinaryIO, TextIO


def _isatty(stream: TextIO | None) -> bool:
    try:
        return stream is not None and stream.isatty()
    except (AttributeError, ValueError):  # a closed or odd stream
        return False


@dataclass(frozen=True)
class Terminal:
    """stdin, stdout and stderr, and whether each is a terminal, as httpie's `Environment` has them: the CLI asks
    here, never `sys` directly, so a test can run a command in-process as it runs on a terminal or in a pipe."""

    stdin: TextIO | None
    stdout: TextIO | None  # None: the process was started with file descriptor 1 closed
    stderr: TextIO
    stdin_isatty: bool = False
    stdout_isatty: bool = False
    stderr_isatty: bool = False

    @classmethod
    def system(cls) -> Terminal:
        """The process's own streams, as they are now."""
        return cls(
            sys.stdin,
            sys.stdout,
            sys.stderr,
            _isatty(sys.stdin),
            _isatty(sys.stdout),
            _isatty(sys.stderr),
        )

    @classmethod
    def captured(
        cls, stdin: str = "", *, stdin_isatty: bool = False, stdout_isatty: bool = False, stderr_isatty: bool = False
    ) -> Terminal:
        """In-memory streams (stdout with a binary buffer, as a real one has), for running a command in-process."""
        out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
        return cls(io.StringIO(stdin), out, io.StringIO(), stdin_isatty, stdout_isatty, stderr_isatty)

    @property
    def stdout_binary(self) -> BinaryIO | None:
        """Where binary output (audio for `-o -`) goes; None when stdout is closed."""
        if self.stdout is None:
            return None
        buffer = getattr(self.stdout, "buffer", None)
        return buffer if buffer is not None else None

    def stdout_bytes(self) -> bytes:
        """What a `captured` terminal's stdout received, text and binary alike."""
        assert self.stdout is not None
        self.stdout.flush()
        raw = self.stdout.buffer  # type: ignore[attr-defined]
        assert isinstance(raw, io.BytesIO)
        return raw.getvalue()


_current: ContextVar[Terminal | None] = ContextVar("speakcli_terminal", default=None)


def terminal() -> Terminal:
    """The streams of the command being run: the one `using` set, else the process's own."""
    return _current.get() or Terminal.system()


@contextlib.contextmanager
def using(term: Terminal | None) -> Iterator[Terminal]:
    """Run the block with `term` as the command's streams (None: the process's own)."""
    token = _current.set(term)
    try:
        yield terminal()
    finally:
        _current.reset(token)
