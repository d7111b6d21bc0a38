"""watch: real files, real threads, real watchdog; every line spoken once, in order, whatever the file does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from speakcli.engines.base import SynthesisOptions
from speakcli.errors import ExitStatus, UsageError
from speakcli.scheduling import SpeechTask
from speakcli.ssml import plain
from speakcli.testing import FakeEngine
from speakcli.testing.watch import Passes
from speakcli.watch import EventLog, Line, WatchDaemon, WatchOptions, check_encoding
from speakcli.watch.follower import Follower
from speakcli.watch.queue import LineQueue
from speakcli.worker import SynthesisWorker


class Harness:
    """A WatchDaemon on a fake engine, recording events; waits use conditions, not sleeps."""

    def __init__(self, target: Path, engine: FakeEngine | None = None, player: Any = None, **opts: Any) -> None:
        self.engine = engine or FakeEngine()
        self.worker = SynthesisWorker(self.engine)
        self.events: list[dict[str, Any]] = []
        self.said: list[tuple[str, str | None]] = []  # (text, voice) of each line submitted
        self.cv = threading.Condition()
        log = EventLog(None)
        log.listeners.append(self._record)
        options = WatchOptions(**{"poll_interval": 0.5, "pause": 0.0, **opts})

        def speak(text: str, line: Line) -> Any:
            self.said.append((text, line.voice))
            return self.worker.submit(SpeechTask(plain(text), None, SynthesisOptions(pause=0)))

        self.daemon = WatchDaemon(target, speak, self.engine.sample_rate, options, player=player, events=log)
        self.passes = Passes(self.daemon)

    def _record(self, event: dict[str, Any]) -> None:
        with self.cv:
            self.events.append(event)
            self.cv.notify_all()

    def __enter__(self) -> Harness:
        self.daemon.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.daemon.stop()
        assert self.daemon.join(20)
        self.worker.close(timeout=10)

    def of(self, kind: str) -> list[dict[str, Any]]:
        with self.cv:
            return [e for e in self.events if e["event"] == kind]

    def wait(self, predicate: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        with self.cv:
            while not predicate():
                left = deadline - time.monotonic()
                assert left > 0, f"timed out; events so far: {self.events[-5:]}"
                self.cv.wait(min(left, 0.5))

    def wait_spoken(self, n: int, timeout: float = 30) -> list[str]:
        self.wait(lambda: len(self.of("synthesized")) + len(self.of("skipped")) >= n, timeout)
        return self.spoken_texts()

    def spoken_texts(self) -> list[str]:
        read = {e["seq"]: e["text"] for e in self.of("read")}
        return [read[e["seq"]] for e in self.of("synthesized")]


def append(path: Path, data: str | bytes) -> None:
    with path.open("ab") as fh:
        fh.write(data.encode() if isinstance(data, str) else data)


# --- the follower alone ------------------------------------------------------------------------------


def test_follower_starts_at_the_end_but_at_a_line_start(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"old one\nold two\nhalf a li")
    follower = Follower(path)
    assert follower.poll() == []
    append(path, "ne\nnew\n")
    assert [r.text for r in follower.poll()] == ["half a line", "new"]


def test_follower_start_when_the_file_has_no_newline(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"one unfinished line")
    follower = Follower(small)
    assert follower.poll() == []
    append(small, " ends here\n")
    assert [r.text for r in follower.poll()] == ["one unfinished line ends here"]
    huge = tmp_path / "huge.txt"
    huge.write_bytes(b"x" * 200_000)  # no newline in its last 64 KiB: start at the end, not the top
    follower = Follower(huge)
    follower.poll()
    assert follower.offset == 200_000


def test_follower_encoding_bom_crlf_and_invalid_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbfbom line\r\nbad \xff\xfe bytes\nlatin\n")
    lines = Follower(path, from_start=True).poll()
    assert [r.text for r in lines] == ["bom line", "bad \ufffd\ufffd bytes", "latin"]
    assert [(r.start, r.end) for r in lines] == [(0, 13), (13, 26), (26, 32)]
    with pytest.raises(UsageError, match="UTF-16"):
        check_encoding("utf-16")
    cp = tmp_path / "cp.txt"
    cp.write_bytes("café\n".encode("cp1252"))
    assert [r.text for r in Follower(cp, encoding="cp1252", from_start=True).poll()] == ["café"]


def _qline(seq: int, skip: str | None = None, path: str = "f") -> Line:
    return Line(seq, f"l{seq}", Path(path), seq, seq + 1, (0, 0), 0.0, 0.0, skip)


def _drain(q: LineQueue) -> list[Any]:
    """What a consumer gets: seq of each line to speak, and {file: newest seq} of each folded run of skips."""
    out: list[Any] = []
    while (item := q.get(0)) is not None:
        out.append(item.seq if isinstance(item, Line) else {str(p): ln.seq for p, ln in item.last.items()})
    return out


def test_queue_policies_count_only_speakable_lines() -> None:
    stop = threading.Event()
    q = LineQueue(2, "drop-oldest")
    dropped = [q.put(_qline(i), stop) for i in range(1, 5)]
    assert [d.seq if d else None for d in dropped] == [None, None, 1, 2]
    assert all(d.skip == "overflow" for d in dropped if d)
    q.put(_qline(5, "empty"), stop)
    assert len(q) == 2  # skips do not count
    # Dropped lines keep their place (in order, for the state file) folded into one entry; the skip after them too.
    assert _drain(q) == [{"f": 2}, 3, 4, {"f": 5}]
    q = LineQueue(2, "drop-newest")
    for i in range(1, 5):
        q.put(_qline(i), stop)
    assert _drain(q) == [1, 2, {"f": 4}]
    assert q.dropped == 2


def test_queue_skips_keep_the_newest_line_of_each_file_in_order() -> None:
    stop = threading.Event()
    q = LineQueue(0)
    q.put(_qline(1, "empty", "a"), stop)
    q.put(_qline(2, "empty", "b"), stop)
    q.put(_qline(3, "empty", "a"), stop)
    q.put(_qline(4), stop)
    q.put(_qline(5, "empty", "b"), stop)
    assert _drain(q) == [{"a": 3, "b": 2}, 4, {"b": 5}]


def test_drop_oldest_is_constant_time_and_bounded() -> None:
    """100k lines through a queue of 3: each put touches O(1) entries, so the queue never holds more than 7."""
    stop = threading.Event()
    q = LineQueue(3, "drop-oldest")
    for i in range(1, 100_001):
        q.put(_qline(i, "empty" if i % 7 == 0 else None), stop)
        assert q.entries <= 2 * 3 + 1, i
    got = _drain(q)
    assert got[-3:] == [99_998, 99_999, 100_000]  # the newest three lines to speak survive, in order
    assert q.dropped == 100_000 - 100_000 // 7 - 3
    assert all(isinstance(g, dict) for g in got[:-3]) and got[0]["f"] == 99_997  # every drop recorded, folded


# --- the daemon on real files with watchdog -----------------------------------------------------------


@pytest.mark.slow
def test_a_burst_of_thousands_while_the_engine_is_slow(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    engine = FakeEngine()
    engine.gate.clear()  # the engine is stuck on its first line while the burst arrives
    n = 3000
    with Harness(path, engine) as h:
        append(path, "".join(f"line {i}\n" for i in range(n)))
        h.wait(lambda: len(h.of("read")) == n, timeout=30)  # all enqueued although nothing is spoken yet
        assert engine.spoken == []
        engine.gate.set()
        spoken = h.wait_spoken(n, timeout=120)
    assert spoken == [f"line {i}" for i in range(n)]  # all, in order, none twice
    assert [e["seq"] for e in h.of("read")] == list(range(1, n + 1))


@pytest.mark.slow
def test_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    with Harness(path) as h:
        append(path, "hello wor")
        assert h.passes.wait(3)
        assert h.of("read") == []
        append(path, "ld\n")
        assert h.wait_spoken(1) == ["hello world"]


@pytest.mark.slow
def test_flush_partial_speaks_a_line_left_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    with Harness(path, flush_partial=0.3) as h:
        append(path, "no newline here")
        assert h.wait_spoken(1) == ["no newline here"]
        append(path, "\nnext\n")  # the newline that finally comes ends an empty line: skipped, not spoken
        h.wait_spoken(3)
    assert h.spoken_texts() == ["no newline here", "next"]


@pytest.mark.slow
def test_truncation_restarts_at_the_new_content(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    with Harness(path) as h:
        append(path, "one\ntwo\n")
        h.wait_spoken(2)
        with path.open("w") as fh:  # truncate, then write less than before
            fh.write("3\n")
        h.wait_spoken(3)
        # Rewritten in place, longer than before, in one write over the old bytes: the file is never shorter than
        # what was read, so only its changed first bytes can tell (a truncation first would let the size tell).
        with path.open("r+") as fh:
            fh.write("four is longer\nfive\n")
        h.wait_spoken(5)
    assert h.spoken_texts() == ["one", "two", "3", "four is longer", "five"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["rename", "delete"])
def test_rotation_finishes_the_old_file_then_follows_the_new(tmp_path: Path, how: str) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    with Harness(path) as h:
        append(path, "a1\na2\n")
        h.wait_spoken(2)
        append(path, "a3\n")  # written just before rotation: must not be lost
        if how == "rename":
            path.rename(tmp_path / "chat.txt.1")
        else:
            path.unlink()
        path.write_text("b1\nb2\n")
        h.wait_spoken(5)
        append(path, "b3\n")
        h.wait_spoken(6)
    assert h.spoken_texts() == ["a1", "a2", "a3", "b1", "b2", "b3"]


@pytest.mark.slow
def test_a_file_that_does_not_exist_yet(tmp_path: Path) -> None:
    path = tmp_path / "later.txt"
    with Harness(path) as h:
        assert h.passes.wait(2)
        path.write_text("first\nsecond\n")
        assert h.wait_spoken(2) == ["first", "second"]


@pytest.mark.slow
def test_filters_long_lines_and_failures(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    long = " ".join(f"word{i}" for i in range(400))
    with Harness(path, ignore_prefixes=("!",), skip_regex=r"^\[bot\]", max_chars=200) as h:
        append(path, f"  \n!cmd\n[bot] hi\nplease FAIL\nok\n{long}\nend\n")
        h.wait(lambda: h.spoken_texts()[-1:] == ["end"], timeout=30)
    reasons = sorted(e["reason"] for e in h.of("skipped"))
    assert reasons == ["empty", "error: this line cannot be spoken", "ignored prefix", "skip regex"]
    spoken = h.spoken_texts()
    assert spoken[0] == "ok" and spoken[-1] == "end"
    pieces = spoken[1:-1]
    assert len(pieces) > 1 and all(len(p) <= 200 for p in pieces) and " ".join(pieces) == long


@pytest.mark.slow
def test_drop_oldest_and_max_age(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    engine = FakeEngine()
    engine.gate.clear()
    with Harness(path, engine, max_queue=3, overflow="drop-oldest") as h:
        append(path, "".join(f"m{i}\n" for i in range(10)))
        h.wait(lambda: len(h.of("read")) == 3)
        engine.gate.set()
        h.wait_spoken(3 + 1)
    # The seven oldest are skipped through unread, told in one event; the newest three are spoken.
    assert h.spoken_texts() == ["m7", "m8", "m9"]
    assert [(e["reason"], e["lines"]) for e in h.of("skipped")] == [("overflow", 7)]
    assert h.daemon.queue.dropped == 7 and h.daemon.stats.skipped == 7

    path2 = tmp_path / "aged.txt"
    path2.touch()
    slow = FakeEngine(delay=0.3)
    with Harness(path2, slow, max_age=0.5) as h:
        append(path2, "".join(f"n{i}\n" for i in range(8)))
        h.wait_spoken(8)
    assert any(e["reason"] == "too old" for e in h.of("skipped"))
    assert h.spoken_texts()[0] == "n0"


@pytest.mark.slow
def test_folder_mode_follows_existing_and_new_files(tmp_path: Path) -> None:
    folder = tmp_path / "chats"
    folder.mkdir()
    (folder / "a.txt").write_text("old\n")
    (folder / "ignore.log").write_text("")
    with Harness(folder) as h:
        append(folder / "a.txt", "a new\n")
        h.wait_spoken(1)
        (folder / "b.txt").write_text("b from start\n")
        append(folder / "ignore.log", "not a txt\n")
        h.wait_spoken(2)
    assert h.spoken_texts() == ["a new", "b from start"]


# --- the CLI: real processes, signals, state ------------------------------------------------------------


def _spawn_watch(path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "speakcli", "watch", str(path), *args], stderr=subprocess.PIPE)


def _watch_proc(path: Path, tmp_path: Path, run: int, *extra: str) -> subprocess.Popen[bytes]:
    """The Piper voice writing each line to tmp_path/out, events to tmp_path/events<run>.jsonl."""
    return _spawn_watch(
        path,
        "--engine",
        "piper",
        "--no-play",
        "--output-dir",
        str(tmp_path / "out"),
        "--events",
        str(tmp_path / f"events{run}.jsonl"),
        "--poll-interval",
        "0.2",
        *extra,
    )


def _events(path: Path) -> list[dict[str, Any]]:
    """The complete events so far: the daemon may be writing the last line as we read."""
    if not path.exists():
        return []
    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines()]


def _wait_events(
    path: Path, predicate: Callable[[list[dict[str, Any]]], bool], proc: subprocess.Popen[bytes], timeout: float = 90
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = _events(path)
        if predicate(events):
            return events
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        time.sleep(0.05)  # polling a file another process writes; there is no event to wait on
    raise AssertionError(f"timed out: {_events(path)[-3:]}")


def _spoken(events: list[dict[str, Any]]) -> list[str]:
    read = {e["seq"]: e["text"] for e in events if e["event"] == "read"}
    return [read[e["seq"]] for e in events if e["event"] == "written"]


@pytest.mark.slow
@pytest.mark.parametrize("kill", [signal.SIGKILL, signal.SIGTERM])
def test_restart_after_kill_or_sigterm_loses_nothing(tmp_path: Path, kill: signal.Signals) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    lines = [f"Message number {i}." for i in range(12)]
    first = _watch_proc(path, tmp_path, 1)
    _wait_events(tmp_path / "events1.jsonl", lambda ev: any(e["event"] == "started" for e in ev), first)
    append(path, "".join(f"{t}\n" for t in lines))
    _wait_events(tmp_path / "events1.jsonl", lambda ev: len(_spoken(ev)) >= 3, first)
    os.kill(first.pid, kill)
    assert first.wait(30) == (-signal.SIGKILL if kill == signal.SIGKILL else 0)
    first.stderr.close()  # type: ignore[union-attr]
    before = _spoken(_events(tmp_path / "events1.jsonl"))
    if kill == signal.SIGTERM:
        assert _events(tmp_path / "events1.jsonl")[-1]["event"] == "stopped"
    second = _watch_proc(path, tmp_path, 2)
    after_ev = _wait_events(tmp_path / "events2.jsonl", lambda ev: _spoken(ev)[-1:] == [lines[-1]], second)
    second.send_signal(signal.SIGTERM)
    assert second.wait(30) == 0
    second.stderr.close()  # type: ignore[union-attr]
    after = _spoken(after_ev)
    assert sorted(set(before + after), key=lines.index) == lines  # nothing lost
    repeated = [t for t in after if t in before]
    assert len(repeated) <= (1 if kill == signal.SIGKILL else 0)  # SIGKILL: at most the line in progress


@pytest.mark.slow
def test_cli_rejects_bad_options_in_one_line(tmp_path: Path) -> None:
    from helpers import portaudio_available, run_cli

    cases = [
        (["watch", "x.txt", "--no-play"], ExitStatus.USAGE, b"--no-play needs --output-dir"),
        (["watch", "x.txt", "--overflow", "nope"], ExitStatus.USAGE, b"--overflow"),
        (["watch", "x.txt", "--encoding", "utf-16"], ExitStatus.USAGE, b"UTF-16"),
        (
            ["watch", "x.txt", "--skip-regex", "(", "--no-play", "--output-dir", "o"],
            ExitStatus.USAGE,
            b"not a valid regex",
        ),
        (["watch", "nodir/x.txt", "--no-play", "--output-dir", "o"], ExitStatus.USAGE, b"folder nodir does not exist"),
        (
            ["watch", "x.txt", "-q", "--engine", "piper", "--output-device", "no-such-device-xyz"],
            ExitStatus.AUDIO_DEVICE,
            # Without PortAudio (a fresh machine) the same mistake is reported as the missing library.
            b"device" if portaudio_available() else b"PortAudio library is missing",
        ),
    ]
    for args, code, message in cases:
        result = run_cli(*args)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def longer_tiny_xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny XTTS allowed 44 audio tokens: a sentence streams as 3 chunks (20 tokens each, then the rest)."""
    from speakcli.testing.tiny_xtts import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts-44"), max_audio_tokens=44)


@pytest.mark.slow
@pytest.mark.xtts
@pytest.mark.audio
def test_watch_with_tiny_xtts_streams_each_line(longer_tiny_xtts_dir: Path, tmp_path: Path) -> None:
    """Playing, a line's first audio reaches the device before the line's last audio chunk has been synthesized."""
    path = tmp_path / "chat.txt"
    path.write_text("Hello there, this is one sentence.\n")
    model = str(longer_tiny_xtts_dir)
    proc = _spawn_watch(path, "--from-start", "--model-dir", model, "--events", str(tmp_path / "ev.jsonl"))
    events = _wait_events(tmp_path / "ev.jsonl", lambda ev: any(e["event"] == "played" for e in ev), proc, timeout=180)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == ExitStatus.INTERRUPTED
    proc.stderr.close()  # type: ignore[union-attr]
    assert [e["text"] for e in events if e["event"] == "read"] == ["Hello there, this is one sentence."]
    synthesized = {e["seq"]: e for e in events if e["event"] == "synthesized"}
    played = {e["seq"]: e for e in events if e["event"] == "played"}
    for seq, done in synthesized.items():
        assert done["chunks"] >= 2, done  # one sentence in several chunks: XTTS streamed it
        # The device pulled the line's first frame while later chunks were still being made.
        assert played[seq]["first_audio_time"] < done["last_chunk_time"], (played[seq], done)


@pytest.mark.slow
@pytest.mark.audio
def test_watch_plays_lines_back_to_back(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    proc = _spawn_watch(
        path, "--engine", "piper", "--events", str(tmp_path / "ev.jsonl"), "--poll-interval", "0.2", "--pause", "0.3"
    )
    _wait_events(tmp_path / "ev.jsonl", lambda ev: any(e["event"] == "started" for e in ev), proc)
    append(path, "First line to play.\nSecond line to play.\n")
    events = _wait_events(tmp_path / "ev.jsonl", lambda ev: sum(e["event"] == "played" for e in ev) == 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    proc.stderr.close()  # type: ignore[union-attr]
    played = [e for e in events if e["event"] == "played"]
    assert all(e["first_audio"] is not None and 0 < e["first_audio"] < 10 for e in played)
    # The second line starts right after the first one's audio and the pause: no gap beyond it.
    gap = played[1]["first_audio_time"] - played[0]["first_audio_time"] - played[0]["audio_seconds"]
    assert 0.25 < gap < 0.6
