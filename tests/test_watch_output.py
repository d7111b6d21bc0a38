"""watch's output side: numbered files never replaced, skips recorded, failures stop it with the right code."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from speakcli.errors import ExitStatus, OutputError
from speakcli.testing import StalledPlayer
from speakcli.watch import EventLog, FolderSink, Line
from test_watch import Harness, _events, _spawn_watch, _wait_events, append


def _offset(state: Path, path: Path) -> int | None:
    if not state.exists():
        return None
    entry = json.loads(state.read_text())["files"].get(str(path.resolve()))
    return None if entry is None else int(entry["offset"])


def test_output_numbering_continues_and_never_replaces_a_file(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    out = tmp_path / "out"
    old = os.umask(0o022)
    try:
        with Harness(path, output_dir=out) as h:
            append(path, "alpha\nbeta\n")
            h.wait(lambda: len(h.of("written")) == 2)
        first = {p.name: p.read_bytes() for p in out.iterdir()}
        assert sorted(first) == ["000001-alpha.wav", "000002-beta.wav"]
        assert {(out / n).stat().st_mode & 0o777 for n in first} == {0o644}
        (out / "000007-from-elsewhere.wav").write_bytes(b"not ours")
        os.umask(0o027)
        with Harness(path, output_dir=out) as h:  # a restart: its seq starts at 1 again
            append(path, "alpha\ngamma\n")
            h.wait(lambda: len(h.of("written")) == 2)
        assert [e["seq"] for e in h.of("written")] == [1, 2]
    finally:
        os.umask(old)
    names = sorted(p.name for p in out.iterdir())
    assert names == [*sorted(first), "000007-from-elsewhere.wav", "000008-alpha.wav", "000009-gamma.wav"]
    assert all((out / n).read_bytes() == data for n, data in first.items())  # the first run's files untouched
    assert (out / "000008-alpha.wav").stat().st_mode & 0o777 == 0o640  # the umask's mode, whatever it is


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Hello, World! " * 5, "hello-world-hello-world-hello-wo"),  # batch's slug, 32 characters
        ("日本語のテキスト", "line"),  # nothing to slug: named "line", as before the slug was shared
        ("An item.", "an-item"),
        ("item", "item"),
    ],
)
def test_output_file_names(tmp_path: Path, text: str, name: str) -> None:
    sink = FolderSink(tmp_path / "out", 8000, EventLog(None))
    sink.prepare()
    line = Line(1, text, tmp_path / "chat.txt", 0, 1, (0, 0), 0.0, 0.0)
    sink.deliver(line, [np.zeros(80, np.float32)], 0.01)
    assert [p.name for p in (tmp_path / "out").iterdir()] == [f"000001-{name}.wav"]


def test_nothing_to_say_and_engine_errors_are_skipped_recorded_and_not_retried(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    with Harness(path, state_file=state) as h:
        append(path, "... !!! ???\nbefore\nCRASH here\n")  # the failing line last: nothing after it to record
        h.wait(lambda: len(h.of("skipped")) == 2)
    assert h.engine.spoken == ["before"]
    assert [e["reason"] for e in h.of("skipped")] == [
        "nothing to say",
        "error: the engine failed: RuntimeError: the engine blew up",
    ]
    assert h.of("stopped")[-1]["failed"] == 1 and h.of("stopped")[-1]["skipped"] == 2
    assert _offset(state, path) == path.stat().st_size
    append(path, "next\n")
    with Harness(path, state_file=state) as h2:  # a restart resumes after the failed line: it is not tried again
        h2.wait(lambda: h2.spoken_texts() == ["next"])
    assert h2.engine.spoken == ["next"] and h2.of("skipped") == []


@pytest.fixture
def full_fs(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A 256 KiB tmpfs (as root) and a filler file that takes all of its space once written."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mnt, mnt / "filler"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(filler: Path) -> None:
    """Write to `filler` until the file system is full."""
    with filler.open("ab", buffering=0) as fh, contextlib.suppress(OSError):
        while True:
            fh.write(b"\0" * 4096)


def test_a_full_disk_stops_the_daemon_without_recording_the_line(full_fs: tuple[Path, Path], tmp_path: Path) -> None:
    mnt, filler = full_fs
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    with Harness(path, output_dir=mnt, state_file=state, drain=True) as h:  # drain: even then, no waiting
        append(path, "one\n")
        h.wait(lambda: len(h.of("written")) == 1)
        fill(filler)
        append(path, "".join(f"line {i}\n" for i in range(20)))  # the consumer fills its slots, then waits
        assert h.daemon.join(10)  # every thread stops: none waits on the dead player
    assert isinstance(h.daemon.error, OutputError) and "No space left" in str(h.daemon.error)
    assert _offset(state, path) == len("one\n")  # nothing past the last line delivered
    assert [e["seq"] for e in h.of("written")] == [1]


def test_stop_never_hangs_on_a_stalled_output(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    player = StalledPlayer()
    with Harness(path, player=player, state_file=state, stop_grace=0.5) as h:
        append(path, "stuck line\nnext line\n")
        assert player.writing.wait(10)
        started = time.monotonic()
        h.daemon.stop()
        assert h.daemon.join(5), "the daemon hung on its output"
        assert time.monotonic() - started < 3
    assert h.of("played") == [] and _offset(state, path) is None  # cut, so not recorded: spoken after a restart


@pytest.mark.slow
def test_watchdog_delivers_lines_without_waiting_for_the_poll(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    with Harness(path, poll_interval=30) as h:  # the safety-net poll would come far too late
        append(path, "via inotify\n")
        assert h.wait_spoken(1, timeout=10) == ["via inotify"]
        append(path, "and again\n")
        assert h.wait_spoken(2, timeout=10) == ["via inotify", "and again"]


# --- the CLI ------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_output_errors_exit_6_in_one_line(tmp_path: Path) -> None:
    from helpers import run_cli

    (tmp_path / "afile").write_text("")
    cases = [
        (["watch", "x.txt", "--events", "nodir/ev.jsonl", "--no-play", "--output-dir", "o"], b"events file"),
        (["watch", "x.txt", "--no-play", "--output-dir", "afile"], b"is a file"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.returncode == ExitStatus.OUTPUT and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_cli_full_disk_exits_6_and_says_so_once(full_fs: tuple[Path, Path], tmp_path: Path) -> None:
    mnt, filler = full_fs
    fill(filler)
    path = tmp_path / "chat.txt"
    path.touch()
    ev = tmp_path / "ev.jsonl"
    proc = _spawn_watch(path, "--engine", "piper", "--no-play", "--output-dir", str(mnt), "--events", str(ev))
    _wait_events(ev, lambda e: any(x["event"] == "started" for x in e), proc)
    append(path, "This line has nowhere to go.\nNor this one.\n")
    assert proc.wait(60) == ExitStatus.OUTPUT
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert err.count("No space left") == 1, err
    assert _events(ev)[-1]["event"] == "stopped"


@pytest.mark.slow
def test_cli_ctrl_c_exits_130(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    ev = tmp_path / "ev.jsonl"
    proc = _spawn_watch(path, "--engine", "piper", "--no-play", "--output-dir", "o", "--events", str(ev))
    _wait_events(ev, lambda e: any(x["event"] == "started" for x in e), proc)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == ExitStatus.INTERRUPTED
    proc.stderr.close()  # type: ignore[union-attr]
    assert _events(ev)[-1]["event"] == "stopped"
