"""Output and feedback as a user sees them: every format everywhere, audio streamed to stdout, progress on a terminal."""

from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import read_pty, run_cli, run_in_terminal, screen_text, spawn_on_pty
from speakcli.cli import main
from speakcli.errors import ExitStatus
from test_watch import _events, _spawn_watch, _wait_events, append

pytestmark = pytest.mark.slow

SAY = [sys.executable, "-m", "speakcli", "say"]
THREE = "The first sentence is here. A second one follows it. And the third ends the text."


def _decode(data: bytes | Path, fmt: str, rate: int = 22050) -> tuple[np.ndarray, int]:
    """Audio back from bytes or a file; raw PCM needs its rate and sample type told."""
    source = io.BytesIO(data) if isinstance(data, bytes) else str(data)
    if fmt in ("pcm", "raw"):
        audio, got = sf.read(source, format="RAW", subtype="PCM_16", samplerate=rate, channels=1, dtype="float32")
    else:
        audio, got = sf.read(source, dtype="float32")
    return audio, int(got)


# -- formats everywhere ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "ext", "rate"), [("mp3", ".mp3", 22050), ("opus", ".opus", 48000), ("raw", ".pcm", 22050)]
)
def test_batch_writes_mp3_opus_and_raw_pcm(tmp_path: Path, fmt: str, ext: str, rate: int) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello there.\nA second line to speak.\n")
    out = tmp_path / "out"
    assert main(["batch", str(lines), "-o", str(out), "--format-out", fmt, "--engine", "piper", "-q"]) == 0
    files = sorted(out.glob(f"*{ext}"))
    assert len(files) == 2
    for f in files:
        audio, got = _decode(f, fmt)
        assert got == rate and len(audio) / rate > 0.5 and np.abs(audio).max() > 0.05


def test_watch_output_dir_writes_the_chosen_format(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    ev = tmp_path / "ev.jsonl"
    proc = _spawn_watch(
        path, "--engine", "piper", "--no-play", "--output-dir", "out", "--format-out", "opus", "--events", str(ev)
    )
    _wait_events(ev, lambda e: any(x["event"] == "started" for x in e), proc)
    append(path, "Hello there.\nAnother line.\n")
    _wait_events(ev, lambda e: sum(x["event"] == "written" for x in e) == 2, proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert proc.stderr
    proc.stderr.close()
    written = [Path(e["file"]) for e in _events(ev) if e["event"] == "written"]
    assert [p.name for p in written] == ["000001-hello-there.opus", "000002-another-line.opus"]
    for p in written:
        audio, rate = _decode(tmp_path / p, "opus")
        assert rate == 48000 and len(audio) / rate > 0.5


def test_an_unknown_format_is_a_usage_error_naming_the_choices(tmp_path: Path) -> None:
    for args in (["batch", "x.txt", "--format-out", "wma"], ["watch", "x.txt", "--format-out", "wma"]):
        result = run_cli(*args)
        assert result.returncode == ExitStatus.USAGE
        lines = result.stderr.decode().strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("speakcli: usage error:")
        assert "'wma' is not one of 'wav', 'flac', 'ogg', 'opus', 'mp3', 'aac', 'm4a', 'pcm', 'raw'" in lines[0]


# -- say -o - --------------------------------------------------------------------------------------------------------


def test_stdout_streams_from_the_first_sentence_and_the_whole_decodes() -> None:
    text = " ".join(f"This is sentence number {i} of a text that takes a while." for i in range(20))
    started = time.monotonic()
    proc = subprocess.Popen(
        [*SAY, text, "--engine", "piper", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    assert proc.stdout
    fd = proc.stdout.fileno()
    first = os.read(fd, 1 << 20)
    first_at = time.monotonic()
    alive_at_first = proc.poll() is None
    rest = b"".join(iter(lambda: os.read(fd, 1 << 20), b""))
    ended = time.monotonic()
    proc.stdout.close()
    assert proc.wait(30) == 0
    assert alive_at_first and first[:4] == b"RIFF"
    # The first bytes came while most of the work was still ahead (all at once, they would come at the very end),
    # and most of the audio came after them.
    assert ended - first_at > (ended - started) / 4, (first_at - started, ended - started)
    assert len(rest) > 10 * len(first)
    audio, rate = sf.read(io.BytesIO(first + rest), dtype="float32")  # the open-ended WAV header reads back
    assert rate == 22050 and len(audio) / rate > 40


def test_a_reader_that_closes_the_pipe_ends_say_quietly_with_141() -> None:
    text = " ".join(f"This is sentence number {i} of a text that takes a while." for i in range(200))
    proc = subprocess.Popen(
        [*SAY, text, "--engine", "piper", "-o", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert proc.stdout and proc.stderr
    assert os.read(proc.stdout.fileno(), 100)[:4] == b"RIFF"  # as `| head -c 100` reads, then leaves
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(60) == ExitStatus.BROKEN_PIPE == 141
    assert err == b""  # no message, no traceback, no "Exception ignored" at exit


def test_a_closed_pipe_cancels_the_rest_of_the_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from speakcli import engines
    from speakcli.testing import FakeEngine

    engine = FakeEngine(delay=0.02)  # 1,000 sentences: 20 s of work if the worker were left to finish them
    monkeypatch.setitem(engines._REGISTRY, "piper", lambda spec: engine)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader left before the first byte
    with io.TextIOWrapper(io.FileIO(write_end, "wb")) as closed:
        monkeypatch.setattr(sys, "stdout", closed)
        text = " ".join(f"Sentence {i}." for i in range(1000))
        assert main(["say", text, "--engine", "piper", "--no-server", "-o", "-"]) == ExitStatus.BROKEN_PIPE
    # The worker stopped after the sentence it was on (main joined it), not at the end of the text.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("speakcli") and t.is_alive()]
    assert 1 <= len(engine.texts) < 1000


def test_say_to_a_closed_stdout_is_one_line_exit_6() -> None:
    result = run_cli("say", "Hello.", "--engine", "piper", "-o", "-", preexec_fn=lambda: os.close(1))
    assert result.returncode == ExitStatus.OUTPUT
    assert result.stderr.decode().splitlines() == [
        "speakcli: error: -o - writes audio to stdout, which is closed; redirect it (-o - > speech.wav) or use -o FILE"
    ]


@pytest.mark.parametrize(("fmt", "rate"), [("raw", 22050), ("mp3", 22050), ("opus", 48000), ("flac", 22050)])
def test_format_picks_the_stdout_encoding(fmt: str, rate: int) -> None:
    result = run_cli("say", THREE, "--engine", "piper", "-o", "-", "--format", fmt)
    assert result.returncode == 0, result.stderr
    audio, got = _decode(result.stdout, fmt, rate)
    assert got == rate and 3.0 < len(audio) / rate < 10.0
    if fmt == "raw":
        assert result.stdout[:4] != b"RIFF" and len(result.stdout) % 2 == 0  # bare 16-bit samples, no header


def test_format_must_agree_with_a_file_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["say", "Hi.", "--engine", "piper", "-o", "x.wav", "--format", "mp3"]) == ExitStatus.USAGE
    assert "name the file x.mp3" in capsys.readouterr().err
    assert main(["say", "Hi.", "--engine", "piper", "-q", "-o", "x.mp3", "--format", "mp3"]) == 0
    assert sf.info("x.mp3").format == "MP3"


def test_binary_audio_is_not_written_to_a_terminal() -> None:
    status, term = run_in_terminal(["say", "Hello.", "--engine", "piper", "-o", "-"], stdout_isatty=True)
    assert status == ExitStatus.USAGE
    assert [ln for ln in term.stderr.getvalue().splitlines() if ln.strip()] == [
        "speakcli: error: -o - would write binary audio to the terminal; redirect it (-o - > speech.wav, or | aplay) "
        "or write a file with -o FILE"
    ]
    assert term.stdout_bytes() == b""


# -- feedback --------------------------------------------------------------------------------------------------------


def test_progress_shows_on_a_terminal_loading_sentences_and_audio(tmp_path: Path) -> None:
    status, term = run_in_terminal(
        ["say", THREE, "--engine", "piper", "-o", str(tmp_path / "x.wav")], stderr_isatty=True
    )
    shown = screen_text(term.stderr.getvalue().encode())
    assert status == 0
    assert "loading the piper model" in shown
    assert "3/3 sentences" in shown
    seconds = [float(s) for s in re.findall(r"(\d+\.\d) s of audio", shown)]
    assert seconds and max(seconds) > 3.0
    assert shown.rindex("wrote") > shown.rindex("s of audio")  # printed once the progress is cleared, not under it


def test_no_progress_on_a_pipe_or_with_quiet(tmp_path: Path) -> None:
    status, piped = run_in_terminal(["say", THREE, "--engine", "piper", "-o", str(tmp_path / "a.wav")])
    assert status == 0
    lines = piped.stderr.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"speakcli: wrote {tmp_path / 'a.wav'}"), lines
    quiet = ["say", THREE, "--engine", "piper", "-q", "-o", str(tmp_path / "b.wav")]
    status, term = run_in_terminal(quiet, stderr_isatty=True)
    assert status == 0 and term.stderr.getvalue() == ""


def test_one_pty_run_shows_what_the_in_process_terminal_shows(tmp_path: Path) -> None:
    """The in-process terminal stands in for a real one: on a real pseudo-terminal the same progress shows."""
    proc, term = spawn_on_pty([*SAY, THREE, "--engine", "piper", "-o", str(tmp_path / "x.wav")])
    shown = screen_text(read_pty(term))
    os.close(term)
    assert proc.wait(30) == 0
    assert "loading the piper model" in shown and "3/3 sentences" in shown and "wrote" in shown


ENGINE_LINE = "no XTTS model found"


@pytest.mark.xtts
def test_the_engine_line_is_one_short_line_and_only_on_a_terminal(tmp_path: Path) -> None:
    status, term = run_in_terminal(["say", "Hi.", "-o", str(tmp_path / "a.wav")], stderr_isatty=True)
    shown = screen_text(term.stderr.getvalue().encode())
    assert status == 0
    lines = [ln for ln in shown.splitlines() if "XTTS" in ln]
    assert len(lines) == 1 and ENGINE_LINE in lines[0] and len(lines[0]) <= 80
    status, piped = run_in_terminal(["say", "Hi.", "-o", str(tmp_path / "b.wav")])
    assert status == 0 and "XTTS" not in piped.stderr.getvalue()


def test_no_engine_line_when_xtts_is_not_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import speakcli.cli.common

    monkeypatch.setattr(speakcli.cli.common, "xtts_installed", lambda: False)
    status, term = run_in_terminal(["say", "Hi.", "-o", str(tmp_path / "a.wav")], stderr_isatty=True)
    shown = screen_text(term.stderr.getvalue().encode())
    assert status == 0
    assert "XTTS" not in shown and "wrote" in shown
