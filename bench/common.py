"""Shared helpers for benchmarks: timing subprocesses, memory figures, percentiles and printing a table."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def time_cmd(cmd: Sequence[str], runs: int, env: dict[str, str] | None = None, stdin: bytes = b"") -> list[float]:
    """Wall seconds of `runs` runs of cmd; raises if any run fails."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = subprocess.run(cmd, input=stdin, capture_output=True, env={**os.environ, **(env or {})})
        times.append(time.perf_counter() - start)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed: {result.stderr.decode()[-500:]}")
    return times


def coqui_tts_cmd(model: Path, text: str, out: Path | str, speaker: str = "Joe") -> list[str]:
    """coqui's own `tts` CLI on a model folder with a built-in speaker (it cannot read a WAV here)."""
    return [
        str(BIN / "tts"),
        "--text",
        text,
        "--model_path",
        str(model),
        "--config_path",
        str(model / "config.json"),
        "--speaker_idx",
        speaker,
        "--language_idx",
        "en",
        "--out_path",
        str(out),
    ]


def proc_mib(pid: int | str, key: str) -> float:
    """A memory figure of a process ("self" or a pid) from /proc (VmRSS: now, VmHWM: its peak so far), in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def med(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def pct(xs: Sequence[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


def table(title: str, rows: list[tuple[str, ...]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    out = [f"\n## {title}\n", line(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out)
