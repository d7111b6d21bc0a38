"""watch for live chat: a voice per speaker, live control (the socket, SIGUSR1), and drop-oldest catching up."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakcli.errors import ExitStatus, UnreachableError
from speakcli.testing import FakeEngine, StalledPlayer, voiced, write_clip
from speakcli.watch.channel import send_command, socket_path
from speakcli.watch.follower import Follower
from speakcli.watch.parsing import Parsed, Voicing
from test_watch import Harness, _events, _spawn_watch, _wait_events, append

PATTERN = "^(?P<speaker>[^:]{1,32}): (?P<text>.*)$"


def _offset(state: Path, path: Path) -> int:
    """The offset the state file holds for `path` (0 before it holds one)."""
    try:
        files = json.loads(state.read_text())["files"]
    except (OSError, ValueError):
        return 0
    return int(files.get(str(path.resolve()), {}).get("offset", 0))


# --- per-line voice ------------------------------------------------------------------------------------------


def test_jsonl_lines_carry_batch_fields_and_fail_with_batch_errors(tmp_path: Path) -> None:
    path = tmp_path / "bot.jsonl"
    path.touch()
    rows = [
        '{"text": "hello", "speaker": "alice", "voice": "anna", "language": "en", "speed": 1.5}',
        '{"text": "no voice", "speaker": "bob"}',
        '{"text": "x", "out": "a.wav"}',
        '{"text": "broken"',
        '["a list"]',
        '{"voice": "anna"}',
        '{"text": "fast", "speed": "quick"}',
        "[" * 5000,  # nested past the JSON parser's recursion limit
        '{"text": "last"}',
    ]
    with Harness(path, input_format="jsonl") as h:
        append(path, "".join(r + "\n" for r in rows))
        h.wait_spoken(len(rows))
    read = {e["seq"]: e for e in h.of("read")}
    assert [(read[s]["text"], read[s].get("speaker"), read[s].get("voice")) for s in sorted(read)][:2] == [
        ("hello", "alice", "anna"),
        ("no voice", "bob", None),
    ]
    reasons = [e["reason"] for e in h.of("skipped")]
    assert reasons == [  # batch's own words for the same rows
        "error: unknown field(s) out; use text, voice, language, speed, speaker",
        "error: invalid JSON at column 18 (Expecting ',' delimiter)",
        "error: not a JSON object",
        "error: no text",
        "error: speed 'quick' is not a number",
        "error: invalid JSON at column 1 (nested too deeply)",
    ]
    assert h.said == [("hello", "anna"), ("no voice", None), ("last", None)]


def test_speaker_pattern_and_voice_map_choose_each_line_voice(tmp_path: Path) -> None:
    from speakcli.watch.casting import VoiceMap

    vmap = tmp_path / "voices.toml"
    vmap.write_text('default = "narrator"\n[speakers]\nAlice = "anna"\n"Bob the Builder" = "bert"\n')
    path = tmp_path / "chat.txt"
    path.touch()
    lines = [
        "alice: hi there",
        "BOB THE BUILDER: can we fix it",
        "carol: who am I",
        "no speaker here",
        "alice:no space",
    ]
    with Harness(path, speaker_pattern=PATTERN, voice_map=VoiceMap.load(vmap)) as h:
        append(path, "".join(f"{t}\n" for t in lines))
        h.wait_spoken(len(lines))
    # Speakers match in any case; a speaker the map lacks, and a line the pattern does not match, get the default.
    assert h.said == [
        ("hi there", "anna"),
        ("can we fix it", "bert"),
        ("who am I", "narrator"),
        ("no speaker here", "narrator"),
        ("alice:no space", "narrator"),
    ]
    assert [e.get("speaker") for e in h.of("read")] == ["alice", "BOB THE BUILDER", "carol", None, None]


def test_auto_voices_are_least_used_first_and_kept_across_restarts(tmp_path: Path) -> None:
    from speakcli.watch.casting import VoiceMap

    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    vmap = VoiceMap({"dan": "v1"})
    opts: dict[str, Any] = {
        "speaker_pattern": PATTERN,
        "auto_voices": True,
        "voice_pool": ("v1", "v2", "v3"),
        "voice_map": vmap,
        "state_file": state,
    }
    with Harness(path, **opts) as h:
        append(path, "bob: one\nalice: two\nBob: three\n")
        h.wait_spoken(3)
    # v1 is the map's (dan's): bob and alice get the unused ones, in the pool's order; Bob is bob.
    assert [v for _, v in h.said] == ["v2", "v3", "v2"]
    assert json.loads(state.read_text())["voices"] == {"bob": "v2", "alice": "v3"}
    with Harness(path, **opts) as h:
        append(path, "alice: four\ncarol: five\nbob: six\n")
        h.wait_spoken(3)
    # Alice comes first now and keeps v3; carol gets the least used (v1, dan's only), in the pool's order.
    assert [v for _, v in h.said] == ["v3", "v1", "v2"]


def test_announce_only_when_the_speaker_changes(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    lines = ["alice: hi", "alice: again", "bob: yo", "system line", "Alice: back", "alice: more"]
    with Harness(path, speaker_pattern=PATTERN, announce="{speaker} says") as h:
        append(path, "".join(f"{t}\n" for t in lines))
        h.wait_spoken(len(lines))
    assert [t for t, _ in h.said] == [
        "alice says: hi",
        "again",
        "bob says: yo",
        "system line",
        "Alice says: back",
        "more",
    ]
    # The events keep the line as written.
    assert [e["text"] for e in h.of("read")] == ["hi", "again", "yo", "system line", "back", "more"]


def test_a_speaker_pattern_takes_time_bounded_whatever_a_lines_length() -> None:
    import time

    from speakcli.watch.parsing import PATTERN_HEAD, LineParser

    # Unanchored, as a user may well write it: quadratic in what it searches on a line with no colon.
    parser = LineParser("text", r"(?P<speaker>[^:]+):\s*(?P<text>.*)")
    spent = []
    for size in (8_000, 128_000):  # sixteen times as long: 256 times the work if the whole line were searched
        line = "a" * size
        started = time.process_time()
        assert parser.parse(line) == Parsed(line)  # no speaker: said whole
        spent.append(time.process_time() - started)
    assert spent[1] < max(spent[0], 0.01) * 8, spent
    long = "bob: " + "word " * PATTERN_HEAD + "end"  # its text group runs past the part searched
    assert parser.parse(long) == Parsed(long[5:], Voicing(speaker="bob"))


def test_a_flood_of_new_speakers_is_remembered_within_bounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speakcli.watch import casting, state
    from speakcli.watch.casting import Casting

    monkeypatch.setattr(casting, "MAX_SPEAKERS", 50)
    monkeypatch.setattr(state, "MAX_SPEAKERS", 50)
    writes = []
    keeper = state.StateFile(tmp_path / "w.json")
    real_write = keeper._write
    monkeypatch.setattr(keeper, "_write", lambda now: (writes.append(now), real_write(now)))
    pool = ["anna", "bert", "carl"]
    cast = Casting(None, pool, True, keeper.voices, keeper.remember_voice)
    # Each new name once rewrote the whole state file and recounted every speaker: 8,000 names took 18.7 s.
    for n in range(500):
        cast.voice_for(Voicing(speaker=f"user {n} " + "x" * 1000))
    assert len(writes) < 50  # at most 5 a second, not one per name
    keeper.flush()
    kept = json.loads((tmp_path / "w.json").read_text())["voices"]
    assert list(kept) == list(cast.assigned) and len(kept) == 50  # the newest 50 names
    assert all(key.startswith("user 4") and len(key) == casting.MAX_SPEAKER_KEY for key in kept)
    counts = [list(cast.assigned.values()).count(v) for v in pool]
    assert cast._uses == dict(zip(pool, counts, strict=True)) and max(counts) - min(counts) <= 1  # still balanced
    keeper.close()


@pytest.mark.slow
def test_cli_refuses_bad_chat_options_before_the_first_line(tmp_path: Path) -> None:
    from helpers import run_cli

    (tmp_path / "bad.toml").write_text("[speakers\n")
    (tmp_path / "nobody.toml").write_text('[speakers]\nalice = "nobody"\n')
    out = ["--engine", "piper", "--no-play", "-d", str(tmp_path / "o")]
    cases = [
        (["--speaker-pattern", "(?P<who>.+): (?P<text>.*)"], ExitStatus.USAGE, b"no (?P<speaker>...) group"),
        (["--speaker-pattern", "(x"], ExitStatus.USAGE, b"not a valid regex"),
        (["--input", "jsonl", "--speaker-pattern", PATTERN], ExitStatus.USAGE, b"give each line a speaker field"),
        (["--announce", "{who} says"], ExitStatus.USAGE, b"unknown field {who}"),
        (["--voice-map", str(tmp_path / "bad.toml")], ExitStatus.USAGE, b"is not valid TOML"),
        (["--voice-map", str(tmp_path / "missing.toml")], ExitStatus.USAGE, b"does not exist"),
        (["--voice-map", str(tmp_path / "nobody.toml")], ExitStatus.VOICE, b"voice 'nobody'"),
    ]
    for args, code, message in cases:
        result = run_cli("watch", str(tmp_path / "chat.txt"), *out, *args)
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.slow
@pytest.mark.xtts
def test_two_speakers_get_two_voices_and_keep_them_after_a_restart(
    tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path
) -> None:
    """Real voices (the tiny XTTS, a fixed seed): a speaker's lines sound alike, the two speakers differ."""
    from helpers import read

    (voices_dir / "ann").mkdir(parents=True)
    write_clip(voices_dir / "ann" / "ref.wav", voiced(3.0, 22050, f0=240.0), 22050)
    path, out, state = tmp_path / "chat.txt", tmp_path / "out", tmp_path / "state" / "w.json"
    path.touch()
    args = ["--model-dir", str(tiny_xtts_dir), "--no-play", "-d", str(out), "--state-file", str(state)]
    args += ["--speaker-pattern", PATTERN, "--auto-voices", "--poll-interval", "0.2"]
    env = {**os.environ, "SPEAKCLI_SEED": "7"}

    def run(n: int, text: str) -> list[dict[str, Any]]:
        events = tmp_path / f"ev{n}.jsonl"
        proc = subprocess.Popen(
            [sys.executable, "-m", "speakcli", "watch", str(path), *args, "--events", str(events)],
            stderr=subprocess.PIPE,
            env=env,
        )
        _wait_events(events, lambda ev: any(e["event"] == "started" for e in ev), proc, timeout=180)
        append(path, text)
        wanted = text.count("\n")
        got = _wait_events(events, lambda ev: sum(e["event"] == "written" for e in ev) == wanted, proc, timeout=180)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc.stderr.close()  # type: ignore[union-attr]
        return got

    first = run(1, "bob: Hello there.\nalice: Hello there.\nbob: Hello there.\n")
    second = run(2, "alice: Hello there.\n")
    voice = {e["seq"]: e["voice"] for e in first if e["event"] == "read"}
    files = {e["seq"]: read(Path(e["file"]))[0] for e in first if e["event"] == "written"}
    assert voice == {1: "ann", 2: "joe", 3: "ann"}  # the library (ann, and the bundled joe) in order
    # The same speaker, text and seed: the same audio (to a few 16-bit steps); another voice: audibly other.
    assert _difference(files[1], files[3]) < 0.01
    assert _difference(files[1], files[2]) > 0.03
    again = [e for e in second if e["event"] in ("read", "written")]
    assert again[0]["voice"] == "joe"  # alice speaks first now, and keeps her voice
    assert _difference(read(Path(again[1]["file"]))[0], files[2]) < 0.01


def _difference(a: np.ndarray, b: np.ndarray) -> float:
    """The largest sample difference of two clips, relative to the first one's peak (1.0 when lengths differ)."""
    if len(a) != len(b):
        return 1.0
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(a))), 1e-9))


# --- live control -------------------------------------------------------------------------------------------


def test_clear_drops_the_waiting_lines_and_records_them(tmp_path: Path) -> None:
    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    engine = FakeEngine()
    engine.gate.clear()  # the first line holds the engine
    with Harness(path, engine, state_file=state) as h:
        append(path, "first\nsecond\nthird\nfourth\nfifth\n")
        # One line in the engine, one submitted ahead of it, three queued.
        h.wait(lambda: len(engine.texts) == 1 and h.daemon.control.status()["queued"] == 4)
        reply = send_command(socket_path(state), "clear")
        assert reply == {"ok": True, "cleared": 4}
        engine.gate.set()
        end = path.stat().st_size
        h.wait(lambda: h.daemon.state.files.get(str(path.resolve()), {}).get("offset") == end)  # all five done with
    assert h.spoken_texts() == ["first"]
    cleared = [e["seq"] for e in h.of("skipped") if e["reason"] == "cleared"]
    assert sorted(cleared) == [2, 3, 4, 5]
    assert [e["command"] for e in h.of("control")] == ["clear"]
    with Harness(path, state_file=state) as h:  # a restart speaks none of them again
        append(path, "sixth\n")
        h.wait_spoken(1)
    assert h.spoken_texts() == ["sixth"]


def test_pause_holds_every_line_and_resume_speaks_them_in_order(tmp_path: Path) -> None:
    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    with Harness(path, state_file=state) as h:
        assert send_command(socket_path(state), "pause") == {"ok": True, "state": "paused"}
        append(path, "one\ntwo\nthree\n")
        h.wait(lambda: len(h.of("read")) == 3)
        with h.cv:  # a negative: waiting out the window is the test
            assert not h.cv.wait_for(lambda: h.of("synthesized") or h.of("skipped"), timeout=1.0)
        status = send_command(socket_path(state), "status")
        assert status["state"] == "paused" and status["queued"] == 3
        assert send_command(socket_path(state), "resume")["ok"]
        h.wait_spoken(3)
    assert h.spoken_texts() == ["one", "two", "three"] and h.of("skipped") == []
    kinds = [e["event"] if e["event"] != "control" else e["command"] for e in h.events]
    assert kinds.index("resume") < kinds.index("synthesized")


def test_a_stop_while_paused_exits_at_once_and_the_held_lines_come_after_a_restart(tmp_path: Path) -> None:
    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    player = StalledPlayer()  # a device that takes no audio, as a paused one
    # A stop that waited for the line being played would take 120 s.
    h = Harness(path, player=player, state_file=state, stop_grace=120.0)
    with h:
        append(path, "held one\nheld two\n")
        assert player.writing.wait(30)  # the first line is being played
        h.daemon.control.pause()
        h.daemon.stop()
        assert h.daemon.join(30)
    assert h.of("played") == [] and _offset(state, path) == 0  # nothing done with
    with Harness(path, state_file=state, from_start=True) as h:
        h.wait_spoken(2)
    assert h.spoken_texts() == ["held one", "held two"]


def test_skip_cancels_the_job_of_the_line_being_spoken(tmp_path: Path) -> None:
    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    steps = threading.Semaphore(0)
    engine = FakeEngine(steps=steps)
    long = " ".join(f"Sentence number {i}." for i in range(20))
    with Harness(path, engine, state_file=state) as h:
        append(path, f"{long}\nnext\n")
        steps.release()  # one sentence of the long line is made, and it is the line being spoken
        h.wait(lambda: (h.daemon.control.status()["line"] or {}).get("seq") == 1 and len(engine.spoken) == 1)
        assert send_command(socket_path(state), "skip") == {"ok": True, "skipped": 1}
        for _ in range(40):
            steps.release()
        h.wait(lambda: "next" in h.spoken_texts())
    assert [(e["seq"], e["reason"]) for e in h.of("skipped")] == [(1, "skip")]
    made = [t for t in engine.spoken if t.startswith("Sentence")]
    assert len(made) < 5, made  # cancelled: the worker stopped after the step in progress, not 20 sentences on
    assert _offset(state, path) == path.stat().st_size


@pytest.mark.slow
@pytest.mark.audio
def test_skip_cuts_the_line_being_played_within_a_sentence_and_the_next_plays(tmp_path: Path) -> None:
    """`watch-control skip` and SIGUSR1, each on a long one-sentence line playing on the device (Piper)."""
    from helpers import run_cli

    path, state, events = tmp_path / "chat.txt", tmp_path / "state" / "w.json", tmp_path / "ev.jsonl"
    path.touch()
    proc = _spawn_watch(
        path, "--engine", "piper", "--state-file", str(state), "--events", str(events), "--poll-interval", "0.2"
    )
    _wait_events(events, lambda ev: any(e["event"] == "started" for e in ev), proc)
    long = "this sentence goes on and on, with commas, clauses and asides, so that its audio lasts for many seconds"
    append(path, f"One, {long}.\nTwo, {long}.\nThree.\n")

    def playing(seq: int) -> bool:
        line = send_command(socket_path(state), "status")["line"]
        return bool(line and line["seq"] == seq and (line["played_seconds"] or 0) >= 0.5)

    _wait_events(events, lambda ev: playing(1), proc)
    result = run_cli("watch-control", "skip", "--state-file", str(state))
    assert result.returncode == 0 and result.stdout.strip() == b"skipped line 1", result.stderr
    _wait_events(events, lambda ev: playing(2), proc)
    os.kill(proc.pid, signal.SIGUSR1)
    got = _wait_events(events, lambda ev: any(e["event"] == "played" for e in ev), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    proc.stderr.close()  # type: ignore[union-attr]
    skipped = {e["seq"]: e for e in got if e["event"] == "skipped"}
    assert sorted(skipped) == [1, 2] and all(e["reason"] == "skip" for e in skipped.values())
    for e in skipped.values():
        # The device stopped within the sentence: most of the audio handed to it never played.
        assert 0.5 <= e["played_seconds"] < e["audio_seconds"] - 1.0, e
    order = [(e["event"], e.get("seq")) for e in got if e["event"] in ("skipped", "played")]
    assert order == [("skipped", 1), ("skipped", 2), ("played", 3)]
    assert [e["command"] for e in got if e["event"] == "control"] == ["skip", "skip"]
    assert _offset(state, path) == path.stat().st_size  # skipped lines are done with


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_control_refuses_another_users_socket_and_another_users_client(tmp_path: Path) -> None:
    from helpers import run_cli

    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    sock = socket_path(state)
    with Harness(path, state_file=state) as h:
        assert (os.stat(sock).st_mode & 0o777, os.stat(state.parent).st_mode & 0o777) == (0o600, 0o700)
        assert send_command(sock, "status")["ok"]
        # The client trusts only a socket of its own user's that no other user could use or replace.
        for change, why in (
            (lambda: os.chmod(sock, 0o666), "other users may use it"),
            (lambda: os.chown(sock, 65534, 65534), "belongs to another user"),
            (lambda: os.chmod(state.parent, 0o777), "writable by other users"),
        ):
            change()
            with pytest.raises(UnreachableError, match=why):
                send_command(sock, "skip")
            result = run_cli("watch-control", "skip", "--state-file", str(state))
            assert result.returncode == ExitStatus.UNREACHABLE and why.encode() in result.stderr, result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
            os.chown(sock, 0, 0)
            os.chmod(sock, 0o600)
            os.chmod(state.parent, 0o700)
        # The daemon asks the kernel who connected: another user is refused even through an open socket.
        os.chmod(sock, 0o666)
        os.chmod(state.parent, 0o711)
        dir_fd = os.open(state.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            client = (
                "import socket, sys; s = socket.socket(socket.AF_UNIX); "
                f"s.connect('/proc/self/fd/{dir_fd}/{sock.name}'); "
                's.sendall(b\'{"command": "pause"}\\n\'); print(s.recv(4096).decode())'
            )
            other = subprocess.run(
                ["/usr/bin/python3", "-c", client],
                user=65534,
                group=65534,
                pass_fds=(dir_fd,),
                capture_output=True,
                timeout=30,
            )
        finally:
            os.close(dir_fd)
        assert other.returncode == 0, other.stderr
        assert json.loads(other.stdout) == {"ok": False, "error": "refused: uid 65534 is not this daemon's user"}
        assert not h.daemon.control.paused and h.of("control") == []


def test_clients_that_send_nothing_or_a_byte_at_a_time_hold_no_command_up(tmp_path: Path) -> None:
    from speakcli.watch import channel

    path, state = tmp_path / "chat.txt", tmp_path / "state" / "w.json"
    path.touch()
    sock = socket_path(state)
    with Harness(path, state_file=state) as h, contextlib.ExitStack() as stack:
        stalled = []
        for sent in (b"", b"", b'{"comm'):  # each alone once held the daemon's one control thread for 5 s
            client = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            client.settimeout(30)
            with channel._short_path(sock) as address:
                client.connect(address)
            client.sendall(sent)
            stalled.append(client)
        assert send_command(sock, "pause") == {"ok": True, "state": "paused"}  # within its 5 s timeout: at once
        # More idle clients than the daemon reads at once: the one waiting longest goes, the newest is answered.
        for _ in range(channel.MAX_CLIENTS + 2):
            client = stack.enter_context(socket.socket(socket.AF_UNIX, socket.SOCK_STREAM))
            with channel._short_path(sock) as address:
                client.connect(address)
        assert send_command(sock, "resume") == {"ok": True, "state": "idle"}
        stalled[0].setblocking(False)  # already let go, unanswered (its own deadline is seconds away)
        assert stalled[0].recv(100) == b""
        assert [e["command"] for e in h.of("control")] == ["pause", "resume"]


# --- drop-oldest catches up -------------------------------------------------------------------------------------


def test_follower_skips_a_backlog_to_its_newest_lines(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"".join(b"line %d\n" % i for i in range(1000)) + b"half a li")
    follower = Follower(path, from_start=True, keep=3)
    got = follower.poll()
    assert (got[0].skipped, got[0].start, got[0].end) == (997, 0, path.read_bytes().index(b"line 997\n"))
    assert [r.text for r in got[1:]] == ["line 997", "line 998", "line 999"]
    append(path, "ne\nnew\n")
    assert [(r.text, r.skipped) for r in follower.poll()] == [("half a line", 0), ("new", 0)]  # nothing to skip


@pytest.mark.slow
def test_a_50000_line_burst_under_drop_oldest_reaches_the_newest_line_at_once(tmp_path: Path) -> None:
    path, events = tmp_path / "chat.txt", tmp_path / "ev.jsonl"
    path.touch()
    proc = _spawn_watch(
        path,
        *("--engine", "piper", "--no-play", "-d", str(tmp_path / "out"), "--no-state"),
        *("--events", str(events), "--max-queue", "5", "--overflow", "drop-oldest", "--poll-interval", "0.2"),
    )
    _wait_events(events, lambda ev: any(e["event"] == "started" for e in ev), proc)
    append(path, "Warm up.\n")
    _wait_events(events, lambda ev: any(e["event"] == "written" for e in ev), proc)
    n = 50_000
    append(path, "".join(f"Burst line {i}.\n" for i in range(n)))
    newest = f"Burst line {n - 1}."

    def newest_written(ev: list[dict[str, Any]]) -> bool:
        seqs = {e["seq"] for e in ev if e["event"] == "read" and e["text"] == newest}
        return any(e["event"] == "written" and e["seq"] in seqs for e in ev)

    got = _wait_events(events, newest_written, proc, timeout=120)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    proc.stderr.close()  # type: ignore[union-attr]
    burst = [e for e in got if e["event"] == "read" and e["text"].startswith("Burst")]
    jumps = [e for e in got if e["event"] == "skipped" and "lines" in e]
    # Every line of the burst is accounted for: read, or counted in a skip over many at once.
    assert len(burst) + sum(e["lines"] for e in jumps) == n
    # The newest line is reached at once: a few jumps, each followed by at most --max-queue lines read.
    assert 1 <= len(jumps) <= 3 and len(burst) <= 5 * len(jumps) and burst[-1]["text"] == newest
    assert all(e["reason"] == "overflow" for e in jumps)
    assert _events(events)[-1]["dropped"] >= n - 5 * len(jumps)
