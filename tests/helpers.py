"""Helpers for tests that run speakcli as a user would: in a subprocess, or in-process through main()."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf


def run_cli(
    *args: str,
    input: bytes | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 240,
    preexec_fn: Callable[[], object] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """`python -m speakcli ARGS` in a subprocess with the test's isolated environment (`preexec_fn` runs in the
    child before speakcli starts: limits, umask, signal dispositions)."""
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "speakcli", *args],
        input=input if input is not None else b"",
        capture_output=True,
        env=full_env,
        timeout=timeout,
        preexec_fn=preexec_fn,
    )


def read(path: Path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float32")
    return data, int(rate)


def portaudio_available() -> bool:
    """Whether sounddevice can load PortAudio (Debian's libportaudio2); a fresh machine may lack it."""
    try:
        import sounddevice  # noqa: F401
    except OSError:
        return False
    return True


def spawn_on_pty(
    argv: list[str],
    *,
    stdin: int | None = subprocess.DEVNULL,
    stdout: int | None = subprocess.DEVNULL,
    stdout_on_pty: bool = False,
    env: dict[str, str] | None = None,
    preexec_fn: Callable[[], object] | None = None,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start `argv` with stderr (and with `stdout_on_pty`, stdout) on a new 120-column pseudo-terminal, as in a
    user's terminal; returns the process and the terminal's master side, to read with `read_pty`."""
    import fcntl
    import pty
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))
    try:
        proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=slave if stdout_on_pty else stdout,
            stderr=slave,
            env={**os.environ, "TERM": "xterm-256color", **(env or {})},
            preexec_fn=preexec_fn,
        )
    finally:
        os.close(slave)  # the child holds its own copy: reading the master ends when the child exits
    return proc, master


def read_pty(master: int, until: bytes | None = None, timeout: float = 60) -> bytes:
    """What the terminal shows, read until `until` appears, or (None) until every writer has closed it."""
    import select
    import time

    deadline = time.monotonic() + timeout
    data = b""
    while until is None or until not in data:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"the terminal did not show {until!r} in {timeout} s; it showed {data[-500:]!r}")
        ready, _, _ = select.select([master], [], [], left)
        if not ready:
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child side is closed
            chunk = b""
        if not chunk:
            if until is None:
                break
            raise EOFError(f"the terminal closed without showing {until!r}; it showed {data[-500:]!r}")
        data += chunk
    return data


def screen_text(raw: bytes) -> str:
    """Terminal output as text, without escape sequences and carriage returns."""
    import re

    text = re.sub(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>78]", "", raw.decode(errors="replace"))
    return text.replace("\r", "\n")


def run_in_terminal(
    args: list[str],
    stdin: str = "",
    *,
    stdin_isatty: bool = False,
    stdout_isatty: bool = False,
    stderr_isatty: bool = False,
) -> tuple[int, Any]:
    """`speakcli ARGS` in this process with in-memory streams, each a terminal or not as asked; returns the exit
    status and the `speakcli.terminal.Terminal` to read (`stderr.getvalue()`, `stdout_bytes()`)."""
    from speakcli.cli import main
    from speakcli.terminal import Terminal

    term = Terminal.captured(stdin, stdin_isatty=stdin_isatty, stdout_isatty=stdout_isatty, stderr_isatty=stderr_isatty)
    return main(args, term), term
