"""Helpers for tests that run speakcli as a user would: in a subprocess, or in-process through main()."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

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
