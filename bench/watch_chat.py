"""watch for chat (issue 24): the newest line after a burst under drop-oldest, and how fast a skip silences a line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import pct, table

BURSTS = (1_000, 50_000, 500_000)
LONG_LINE = " ".join(f"This is sentence {i} of a long message that someone pasted into the chat." for i in range(20))


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    complete = path.read_text(encoding="utf-8").rpartition("\n")[0]  # the daemon may be mid-line
    return [json.loads(line) for line in complete.splitlines()]


def _wait(
    path: Path, proc: subprocess.Popen[bytes], found: Callable[[list[dict[str, Any]]], Any], timeout: float = 300
) -> Any:
    """What `found` returns once it is not None, polling the daemon's events file (another process's file)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = found(_events(path))
        if got is not None:
            return got
        if proc.poll() is not None:
            raise RuntimeError(f"the watch daemon exited with {proc.returncode}")
        time.sleep(0.02)
    raise RuntimeError(f"timed out; last events: {_events(path)[-3:]}")


def _event_for(kind: str, text: str) -> Callable[[list[dict[str, Any]]], dict[str, Any] | None]:
    """Finds the `kind` event of the line read with `text`."""

    def found(events: list[dict[str, Any]]) -> dict[str, Any] | None:
        seqs = {e["seq"] for e in events if e["event"] == "read" and e["text"] == text}
        return next((e for e in events if e["event"] == kind and e.get("seq") in seqs), None)

    return found


def _spawn(target: Path, events: Path, *args: str) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "speakcli", "watch", str(target), "--engine", "piper", "-q", "--events", str(events)]
    proc = subprocess.Popen([*cmd, *args], stderr=subprocess.DEVNULL)
    _wait(events, proc, lambda ev: True if any(e["event"] == "started" for e in ev) else None)
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    proc.wait(120)


def _bursts(tmp: Path, runs: int) -> list[tuple[str, ...]]:
    """Per burst size, from the burst's last write: to the newest line read, to the first of the burst's lines
    synthesized, and to the newest's audio complete (after the lines kept before it: --max-queue 5)."""
    read: dict[int, list[float]] = {n: [] for n in BURSTS}
    made: dict[int, list[float]] = {n: [] for n in BURSTS}
    first: dict[int, list[float]] = {n: [] for n in BURSTS}
    spoken: dict[int, list[int]] = {n: [] for n in BURSTS}
    size: dict[int, int] = {}
    for run in range(runs):
        chat, events = tmp / f"burst{run}.txt", tmp / f"burst{run}.jsonl"
        chat.touch()
        args = ["--no-play", "-d", str(tmp / f"out{run}"), "--no-state", "--max-queue", "5"]
        proc = _spawn(chat, events, *args, "--overflow", "drop-oldest", "--poll-interval", "0.2")
        try:
            with chat.open("a", encoding="utf-8") as fh:
                fh.write("Warm up.\n")  # the voice loads with the first line: not part of the figures
            _wait(events, proc, _event_for("written", "Warm up."))
            for n in BURSTS:
                payload = "".join(f"Burst {n} line {i}.\n" for i in range(n))
                newest = f"Burst {n} line {n - 1}."
                size[n] = len(payload)
                with chat.open("a", encoding="utf-8") as fh:
                    fh.write(payload)
                end = time.time()
                done = _wait(events, proc, _event_for("synthesized", newest))
                seen = _event_for("read", newest)(_events(events))
                assert seen is not None
                read[n].append(seen["time"] - end)
                made[n].append(done["time"] - end)
                now = _events(events)
                said = {e["seq"] for e in now if e["event"] == "read" and e["text"].startswith(f"Burst {n} ")}
                spoken[n].append(len(said))
                first[n].append(min(e["time"] for e in now if e["event"] == "synthesized" and e["seq"] in said) - end)
        finally:
            _stop(proc)
    return [
        (
            f"{n:,} lines ({size[n] / 1e6:.2f} MB)",
            f"{pct(read[n], 50):.2f}",
            f"{pct(first[n], 50):.2f}",
            f"{pct(made[n], 50):.2f} (max {max(made[n]):.2f})",
            f"{max(spoken[n])}",
        )
        for n in BURSTS
    ]


def _skips(tmp: Path, runs: int) -> list[tuple[str, ...]]:
    """From a skip (the command started, or SIGUSR1 sent) to the `skipped` event and to the device's silence."""
    from speakcli.watch.channel import send_command, socket_path

    state = tmp / "state" / "chat.json"
    chat, events = tmp / "skip.txt", tmp / "skip.jsonl"
    chat.touch()
    proc = _spawn(chat, events, "--state-file", str(state), "--poll-interval", "0.2", "--max-chars", "5000")
    timings: dict[str, tuple[list[float], list[float], list[float]]] = {
        "watch-control skip": ([], [], []),
        "SIGUSR1": ([], [], []),
    }
    cmd = [sys.executable, "-m", "speakcli", "watch-control", "skip", "--state-file", str(state)]
    try:
        for k in range(runs * len(timings)):
            how = list(timings)[k % len(timings)]
            text = f"Message {k}. {LONG_LINE}"
            with chat.open("a", encoding="utf-8") as fh:
                fh.write(text + "\n")
            seq = _wait(events, proc, lambda ev, t=text: next((e["seq"] for e in ev if e.get("text") == t), None))
            deadline = time.monotonic() + 300
            while True:  # until the device has played a second of it
                line = send_command(socket_path(state), "status").get("line")
                if line and line["seq"] == seq and (line["played_seconds"] or 0) >= 1.0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("the long line never played")
                time.sleep(0.05)
            start = time.time()
            if how == "SIGUSR1":
                os.kill(proc.pid, signal.SIGUSR1)
                took = 0.0
            else:
                subprocess.run(cmd, check=True, capture_output=True)
                took = time.time() - start
            skipped = _wait(
                events,
                proc,
                lambda ev, s=seq: next((e for e in ev if e["event"] == "skipped" and e.get("seq") == s), None),
            )
            event, silent, command = timings[how]
            event.append(skipped["time"] - start)
            if skipped.get("silent_time") is not None:
                silent.append(skipped["silent_time"] - start)
            command.append(took)
    finally:
        _stop(proc)
    rows = []
    for how, (event, silent, command) in timings.items():
        rows.append(
            (
                how,
                f"{pct(command, 50):.2f}" if how != "SIGUSR1" else "-",
                f"{pct(event, 50):.2f} (max {max(event):.2f})",
                f"{pct(silent, 50):.2f} (max {max(silent):.2f})" if silent else "not seen",
                str(len(event)),
            )
        )
    return rows


def run(runs: int) -> str:
    runs = min(runs, 3)
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        bursts = _bursts(tmp, max(1, runs // 2))
        out = table(
            "watch: the newest line after a burst (Piper, --no-play, --max-queue 5, --overflow drop-oldest)",
            bursts,
            (
                "burst",
                "-> newest line read s",
                "-> first line synthesized s",
                "-> newest synthesized s",
                "lines spoken",
            ),
        )
        try:
            from speakcli.audio.playback import StreamPlayer

            StreamPlayer(22050).close(drain=False)
        except Exception as exc:  # no audio output here: nothing to skip
            return out + f"\n\nskip latency: not measured, no audio output ({' '.join(str(exc).split())[:80]})"
        skips = _skips(tmp, runs)
    header = ("skip by", "command s", "-> skipped event s", "-> device silent s", "skips")
    return (
        f"{out}\n{table('watch: skip latency (Piper, a 20-sentence line playing, skipped after 1 s)', skips, header)}"
    )
