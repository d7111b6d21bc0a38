"""watch, the input side: what the followed path is or becomes, restarts, locks, wakes and memory under bursts."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from speakcli.errors import ExitStatus, UsageError
from speakcli.fsutil import atomic_write
from speakcli.testing.watch import Passes
from speakcli.watch import EventLog, Line, StateFile, WatchDaemon, WatchOptions
from speakcli.watch.follower import POLL_LINES, READ_BLOCK, Follower
from test_watch import FakeEngine, Harness, _events, _wait_events, _watch_proc, append

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _python(script: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a short script in a fresh interpreter (own limits, own memory peak), with this checkout's code."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + str(Path(__file__).parent)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, timeout=timeout, env=env
    )


class Warned(logging.Handler):
    """Collects the daemon's warnings (caplog's handler is not thread-safe to read while threads log)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> Warned:
        logging.getLogger("speakcli").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("speakcli").removeHandler(self)


# --- 1. rewritten in place while the daemon was down ------------------------------------------------------


def test_copytruncate_while_stopped_is_read_from_the_start(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    with Harness(path, state_file=state) as h:
        append(path, "".join(f"old line number {i}\n" for i in range(20)))
        h.wait_spoken(20)
    inode = path.stat().st_ino
    new = ["Please read this first important note."] + [f"fresh line {i}" for i in range(40)]
    with path.open("r+") as fh:  # logrotate's copytruncate, then the writer goes on: same inode, longer file
        fh.truncate(0)
        fh.write("".join(f"{t}\n" for t in new))
    assert (
        path.stat().st_ino == inode
        and path.stat().st_size > json.loads(state.read_text())["files"][str(path.resolve())]["offset"]
    )
    with Harness(path, state_file=state) as h:
        assert h.wait_spoken(len(new)) == new


def test_resume_where_it_stopped_when_the_file_only_grew(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    with Harness(path, state_file=state) as h:
        append(path, "one\ntwo\n")
        h.wait_spoken(2)
    append(path, "three\n")
    with Harness(path, state_file=state) as h:
        assert h.wait_spoken(1) == ["three"]
    # A state file written before fingerprints existed still resumes (no head: inode and size decide).
    entry = json.loads(state.read_text())["files"][str(path.resolve())]
    del entry["head"], entry["head_len"]
    state.write_text(json.dumps({"version": 1, "files": {str(path.resolve()): entry}}))
    append(path, "four\n")
    with Harness(path, state_file=state) as h:
        assert h.wait_spoken(1) == ["four"]


# --- 2. the path is, or becomes, something other than a regular file ------------------------------------


def test_follower_never_blocks_or_reads_forever_on_a_fifo_a_device_or_a_folder(tmp_path: Path) -> None:
    # In a subprocess with a memory cap and a timeout: before the fix the FIFO blocked open() for ever and
    # /dev/zero was read without end.
    fifo = tmp_path / "fifo.txt"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.txt"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "folder.txt"
    folder.mkdir()
    result = _python(
        f"""
        import resource
        from pathlib import Path
        from speakcli.watch.follower import Follower
        resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))
        for name in ("fifo.txt", "zero.txt", "folder.txt"):
            for from_start in (False, True):
                f = Follower(Path({str(tmp_path)!r}) / name, from_start=from_start)
                print(name, sum(len(f.poll()) for _ in range(3)), f._fh is None)
        """,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:-1] == [
        f"{n} 0 True" for n in ("fifo.txt", "zero.txt", "folder.txt") for _ in "ab"
    ]
    assert "is a FIFO; only regular files are followed" in result.stderr
    assert "is a device" in result.stderr and "is a folder" in result.stderr


def test_the_path_becoming_a_fifo_then_a_file_warns_once_and_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("")
    with Warned() as warned, Harness(path) as h:
        append(path, "before\n")
        h.wait_spoken(1)
        path.unlink()
        os.mkfifo(path)
        assert h.passes.wait(5)  # the producer is not stuck opening the FIFO
        assert [m for m in warned.messages if "FIFO" in m] == [
            f"{path} is a FIFO; only regular files are followed: waiting for one"
        ]
        path.unlink()
        path.write_text("after one\nafter two\n")  # a regular file again: new, so read whole
        assert h.wait_spoken(3) == ["before", "after one", "after two"]
        assert h.daemon.error is None


# --- 3. no self-feeding warnings, no wakes from the daemon's own writes --------------------------------


def test_a_warning_logged_into_the_watched_folder_does_not_loop(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    log_file = logging.FileHandler(tmp_path / "watch.log")  # the user's `2>> folder/watch.log`
    logger = logging.getLogger("speakcli")
    logger.addHandler(log_file)
    try:
        harness = Harness(path)
        harness.daemon.opts.poll_interval = 30  # only pokes and real wakes make passes
        with Warned() as warned, harness as h:
            path.mkdir()  # the followed path becomes a folder: a warning
            assert h.passes.wait(10)  # ten passes (pokes): still one warning, not one per pass
            assert [m for m in warned.messages if "is a folder" in m] == [
                f"{path} is a folder; only regular files are followed: waiting for one"
            ]
            # Under load the mkdir's own events can still be on their way after those passes (one woke the
            # producer inside the window below in CI): touch the folder and wait for the pass its event brings,
            # so every earlier event has been delivered before the window starts.
            start = h.passes.count
            os.utime(path)
            assert not h.passes.none_within(10, since=start)
            log_file.stream.write("another line\n")  # what a further warning would write, surely in the window
            log_file.flush()
            assert h.passes.none_within(1.5)  # writes to watch.log do not wake the producer
            path.rmdir()
    finally:
        logger.removeHandler(log_file)
        log_file.close()


@pytest.mark.parametrize("output", ["out", "."])
def test_the_daemons_own_writes_in_the_watched_folder_never_wake_it(tmp_path: Path, output: str) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "a.txt").write_text("")
    out = folder / output
    options = WatchOptions(
        poll_interval=30, pause=0.0, pattern="*.txt", state_file=folder / "state.txt", output_dir=out
    )
    events = EventLog(str(folder / "events.txt"))
    daemon = WatchDaemon(folder, lambda text, line: None, 1000, options, events=events)
    passes = Passes(daemon)
    daemon.start()
    try:
        assert passes.wait(1)
        assert passes.none_within(0.5)  # quiet before the test's own writes
        line = Line(1, "x", folder / "a.txt", 0, 2, (0, 0), 0.0, 0.0)
        before = passes.count
        for _ in range(5):
            daemon.state.record(line, 0.0, force=True)  # state.txt through a temp and a rename
            events.emit("note")  # events.txt: matches the pattern, yet is never followed
            atomic_write(out / "000001-x.wav", b"RIFF")
        assert passes.none_within(1.5, since=before)
        assert sorted(p.name for p in daemon.producer.followers) == ["a.txt"]
        append(folder / "a.txt", "a line\n")  # and a followed file still wakes it, even with output beside it
        assert passes.wait_for(lambda: daemon.stats.read == 1, timeout=10)
    finally:
        daemon.stop()
        assert daemon.join(10)
        events.close()


# --- 4. memory bounded by the queue, whatever is appended; stop at once ---------------------------------


def test_follower_hands_out_a_huge_append_in_bounded_polls(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.touch()
    follower = Follower(path)
    follower.poll()
    n = 200_000
    append(path, "".join(f"line {i}\n" for i in range(n)))
    first = follower.poll()
    assert len(first) == POLL_LINES and follower.more
    assert len(follower._buf) <= READ_BLOCK
    texts = [r.text for r in first]
    while follower.more:
        texts += [r.text for r in follower.poll()]
    assert texts == [f"line {i}" for i in range(n)]
    assert follower.offset == path.stat().st_size


def test_an_endless_line_is_handed_out_in_parts(tmp_path: Path) -> None:
    path = tmp_path / "big.txt"
    path.touch()
    follower = Follower(path)
    follower.poll()
    word = "abcdéfgh "  # 10 bytes in UTF-8: a cut inside "é" would garble it
    append(path, word * 250_000)  # 2.5 MB, no newline yet
    parts = follower.poll()
    assert [r.part for r in parts] == [0, 1] and all(r.end - r.start <= 1 << 20 for r in parts)
    append(path, "end\n")
    parts += follower.poll()
    assert "".join(r.text for r in parts) == word * 250_000 + "end"
    assert [r.part for r in parts] == [0, 1, 2] and parts[-1].end == path.stat().st_size


def test_stop_during_a_burst_reads_no_further(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    engine = FakeEngine()
    engine.gate.clear()
    with Harness(path, engine, max_queue=5) as h:
        append(path, "".join(f"line {i}\n" for i in range(200_000)))
        h.wait(lambda: len(h.of("read")) >= 5)
        assert h.passes.wait(0)
        h.daemon.stop()
        engine.gate.set()
        assert h.daemon.join(10)
    # The queue's five, three taken by the consumer (two synthesizing, one waiting for a slot), the one being put.
    assert len(h.of("read")) <= 5 + 3 + 1


def test_peak_memory_is_bounded_by_the_queue_not_the_append(tmp_path: Path) -> None:
    result = _python(
        f"""
        import resource, threading
        from pathlib import Path
        from speakcli.testing.watch import Passes
        from speakcli.watch import EventLog, WatchDaemon, WatchOptions
        path = Path({str(tmp_path)!r}) / "chat.txt"
        path.touch()
        reads = threading.Semaphore(0)
        log = EventLog(None)
        log.listeners.append(lambda e: e["event"] == "read" and reads.release())
        gate = threading.Event()
        def speak(text, line):
            gate.wait()
            return None
        opts = WatchOptions(poll_interval=0.2, max_queue=10, use_watchdog=False)
        daemon = WatchDaemon(path, speak, 1000, opts, events=log)
        passes = Passes(daemon)
        daemon.start()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        with path.open("ab") as fh:
            for _ in range(30):
                fh.write(b"a short chat line of some length, say forty-odd bytes\\n" * 20_000)
        for _ in range(11):
            assert reads.acquire(timeout=20)
        passes.wait(0)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        daemon.stop()
        gate.set()
        daemon.join(10)
        print((peak - before) // 1024)
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chat.txt").stat().st_size > 30_000_000
    assert int(result.stdout) < 40, f"peak grew by {result.stdout.strip()} MiB for a 33 MB append"


def test_a_one_megabyte_line_is_spoken_in_pieces_and_stop_is_prompt(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    words = " ".join(f"word{i}." for i in range(150_000))  # about 1.2 MB
    with Harness(path, max_queue=10) as h:
        append(path, words + "\n")
        h.wait(lambda: bool(h.of("read")), timeout=5)  # the first piece comes before the whole line is split
        h.wait_spoken(20, timeout=20)
        started = time.monotonic()
        h.daemon.stop()
        assert h.daemon.join(5)
        assert time.monotonic() - started < 5
        assert h.daemon.error is None
    spoken = h.spoken_texts()
    assert len(spoken) >= 20 and all(len(p) <= 500 for p in spoken)
    assert words.startswith(" ".join(spoken))


# --- 5. the folder deleted, more files than fds, a state file of the wrong shape ------------------------


def test_the_watched_folder_deleted_and_made_again(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "a.txt").write_text("")
    harness = Harness(folder)
    harness.daemon.opts.poll_interval = 30  # only watchdog wakes (and the test's pokes) make passes
    with harness as h:
        append(folder / "a.txt", "first\n")
        h.wait_spoken(1)
        shutil.rmtree(folder)
        assert h.passes.wait(3)
        assert h.daemon.error is None
        folder.mkdir()
        assert h.passes.wait(1)  # the pass that finds the folder back points watchdog at it
        (folder / "b.txt").write_text("back again\n")
        assert h.wait_spoken(2, timeout=10) == ["first", "back again"]


def test_more_files_than_the_open_file_limit(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    for i in range(150):
        (folder / f"f{i:03d}.txt").write_text("")
    result = _python(
        f"""
        import resource, threading
        from pathlib import Path
        from speakcli.testing.watch import Passes
        from speakcli.watch import EventLog, WatchDaemon, WatchOptions
        resource.setrlimit(resource.RLIMIT_NOFILE, (100, 100))
        folder = Path({str(folder)!r})
        log = EventLog(None)
        spoken = []
        done = threading.Event()
        def record(e):
            if e["event"] == "read":
                spoken.append(e["text"])
                done.set()
        log.listeners.append(record)
        opts = WatchOptions(poll_interval=0.2, state_file=folder.parent / "state.json")
        daemon = WatchDaemon(folder, lambda text, line: None, 1000, opts, events=log)
        passes = Passes(daemon)
        daemon.start()
        with open(folder / "f000.txt", "a") as fh:
            fh.write("still reading\\n")
        assert done.wait(20)
        passes.wait(3)
        daemon.stop()
        daemon.join(10)
        print(daemon.error, spoken, (folder.parent / "state.json").exists())
        """,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "None ['still reading'] True"
    assert "open-file limit" in result.stderr and result.stderr.count("open-file limit") == 1


@pytest.mark.parametrize(
    "content",
    [
        "[1, 2]",
        '{"files": [1]}',
        '{"files": {"PATH": 5}}',
        '{"files": {"PATH": {"inode": "ab", "offset": "zz"}}}',
        '{"files": {"PATH": {"inode": [1, 2], "offset": -4}}}',
        '{"files": {"PATH": {"inode": [1, 2], "offset": 3, "head": 7}}}',
        '{"files": null}',
    ],
)
def test_a_state_file_of_the_wrong_shape_is_ignored_with_a_warning(tmp_path: Path, content: str) -> None:
    path = tmp_path / "chat.txt"
    path.write_text("old\n")
    state = tmp_path / "state.json"
    state.write_text(content.replace("PATH", str(path.resolve())))
    with Warned() as warned, Harness(path, state_file=state) as h:
        append(path, "new\n")
        assert h.wait_spoken(1) == ["new"]
    assert any("state file" in m for m in warned.messages)


# --- 6. one daemon per state file ------------------------------------------------------------------------


def test_a_second_daemon_on_the_same_state_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state.json"
    first = StateFile(state)
    with pytest.raises(UsageError, match=rf"another speakcli watch \(pid {os.getpid()}\) already uses"):
        StateFile(state)
    first.close()
    StateFile(state).close()  # released on stop


@pytest.mark.slow
def test_a_second_watch_process_exits_2_until_the_first_dies(tmp_path: Path) -> None:
    from helpers import run_cli

    path = tmp_path / "chat.txt"
    path.touch()
    state = ["--state-file", str(tmp_path / "state.json")]
    first = _watch_proc(path, tmp_path, 1, *state)
    _wait_events(tmp_path / "events1.jsonl", lambda ev: any(e["event"] == "started" for e in ev), first)
    second = run_cli("watch", str(path), "--engine", "piper", "--no-play", "--output-dir", "o", *state, timeout=60)
    assert second.returncode == ExitStatus.USAGE
    lines = second.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and f"another speakcli watch (pid {first.pid}) already uses the state file" in lines[0]
    os.kill(first.pid, signal.SIGKILL)  # flock dies with its process: no stale lock
    first.wait(30)
    first.stderr.close()  # type: ignore[union-attr]
    third = _watch_proc(path, tmp_path, 3, *state)
    _wait_events(tmp_path / "events3.jsonl", lambda ev: any(e["event"] == "started" for e in ev), third)
    # A 1 MB line must not hang the daemon: SIGTERM still stops it in seconds.
    append(path, " ".join(f"word{i}." for i in range(150_000)) + "\n")
    _wait_events(tmp_path / "events3.jsonl", lambda ev: any(e["event"] == "written" for e in ev), third)
    third.send_signal(signal.SIGTERM)
    assert third.wait(10) == 0
    third.stderr.close()  # type: ignore[union-attr]
    assert _events(tmp_path / "events3.jsonl")[-1]["event"] == "stopped"


# --- 7. temps left by a killed daemon --------------------------------------------------------------------


def test_stale_temps_of_the_daemons_own_files_are_removed_and_no_others(tmp_path: Path) -> None:
    folder = tmp_path / "chats"  # the user's folder: the state and events files live there too
    folder.mkdir()
    own = [".state.json.0123abcd.part", ".events.jsonl.89abcdef.part"]
    foreign = [".state.json.notours.part", ".notes.txt.0123abcd.part", "state.json.0123abcd.part", ".x.part"]
    for name in own + foreign:
        (folder / name).write_text("partial")
    events = EventLog(str(folder / "events.jsonl"))
    options = WatchOptions(state_file=folder / "state.json")
    daemon = WatchDaemon(folder / "chat.txt", lambda text, line: None, 1000, options, events=events)
    daemon.state.close()
    events.close()
    left = sorted(p.name for p in folder.iterdir())
    assert left == sorted([*foreign, "events.jsonl", "state.json.lock"])


# --- 8. control characters --------------------------------------------------------------------------------


def test_a_nul_byte_line_is_read_whole_and_its_offset_recorded(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    state = tmp_path / "state.json"
    data = b"hello\x00world\n\x00\x00\x00\nafter\n"
    with Harness(path, state_file=state) as h:
        append(path, data)
        h.wait_spoken(3)
    read = [e["text"] for e in h.of("read")]
    assert read == ["hello\x00world", "\x00\x00\x00", "after"]
    assert h.engine.spoken == ["hello world", "after"]  # normalize turned NUL into a space
    assert [e["reason"] for e in h.of("skipped")] == ["nothing to say"]  # skipped, never retried
    assert json.loads(state.read_text())["files"][str(path.resolve())]["offset"] == len(data)
