"""AAC and M4A from every front end (say, batch, watch, OpenAI's route), decoded back with PyAV; and without
PyAV installed, a one-line error saying what to install."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import run_cli
from serve_helpers import serving
from speakcli.audio.aac import decode
from speakcli.cli import main
from speakcli.errors import ExitStatus
from test_watch import _events, _spawn_watch, _wait_events, append

pytestmark = pytest.mark.slow

THREE = "The first sentence is here. A second one follows it. And the third ends the text."
WITHOUT_PYAV = "import sys; sys.modules['av'] = None; from speakcli.cli import main; raise SystemExit(main())"


def assert_speech(audio: np.ndarray, rate: int, at_least: float, rate_made: int = 22050) -> None:
    assert rate == rate_made
    assert len(audio) / rate > at_least
    assert float(np.sqrt(np.mean(audio**2))) > 0.02  # speech, not silence


@pytest.mark.parametrize("ext", ["m4a", "aac"])
def test_say_writes_m4a_and_aac_by_the_file_name(tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"three.{ext}"
    assert main(["say", THREE, "--engine", "piper", "--no-server", "-q", "-o", str(out)]) == 0
    head = out.read_bytes()[:12]
    assert head[4:12] == b"ftypM4A " if ext == "m4a" else head[:2] == b"\xff\xf1"
    assert_speech(*decode(out), at_least=3.0)


def test_say_streams_adts_to_stdout_with_format_aac() -> None:
    result = run_cli("say", THREE, "--engine", "piper", "--no-server", "-o", "-", "--format", "aac")
    assert result.returncode == 0, result.stderr
    assert result.stdout[:2] == b"\xff\xf1"
    assert_speech(*decode(result.stdout), at_least=3.0)


@pytest.mark.parametrize("fmt", ["m4a", "aac"])
def test_batch_writes_m4a_and_aac(tmp_path: Path, fmt: str) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Hello there.\nA second line to speak.\n")
    out = tmp_path / "out"
    assert main(["batch", str(lines), "-d", str(out), "--format-out", fmt, "--engine", "piper", "-q"]) == 0
    files = sorted(out.glob(f"*.{fmt}"))
    assert len(files) == 2
    for f in files:
        assert_speech(*decode(f), at_least=0.5)


def test_watch_writes_m4a_files(tmp_path: Path) -> None:
    path = tmp_path / "chat.txt"
    path.touch()
    ev = tmp_path / "ev.jsonl"
    proc = _spawn_watch(
        path, "--engine", "piper", "--no-play", "--output-dir", "out", "--format-out", "m4a", "--events", str(ev)
    )
    _wait_events(ev, lambda e: any(x["event"] == "started" for x in e), proc)
    append(path, "Hello there.\n")
    _wait_events(ev, lambda e: any(x["event"] == "written" for x in e), proc)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    assert proc.stderr
    proc.stderr.close()
    written = [tmp_path / e["file"] for e in _events(ev) if e["event"] == "written"]
    assert [p.name for p in written] == ["000001-hello-there.m4a"]
    assert_speech(*decode(written[0]), at_least=0.5)


def test_openai_sdk_gets_aac_as_openai_serves_it() -> None:
    from openai import OpenAI

    with serving() as served:
        sdk = OpenAI(base_url=f"{served.url}/v1", api_key="unused")
        with sdk.audio.speech.with_streaming_response.create(
            model="tts-1", voice="alloy", input=THREE, response_format="aac"
        ) as reply:
            assert reply.headers["content-type"] == "audio/aac"
            body = b"".join(reply.iter_bytes())
        wav = sdk.audio.speech.create(model="tts-1", voice="alloy", input=THREE, response_format="wav")
    assert body[:2] == b"\xff\xf1"  # ADTS: AAC frames with no container
    audio, rate = decode(body)
    wav_audio, wav_rate = decode(wav.content)
    assert_speech(audio, rate, at_least=3.0)
    # The same speech: as long as the WAV, but for AAC's encoder delay and last frame's padding (two frames).
    assert 0 <= len(audio) / rate - len(wav_audio) / wav_rate < 2 * 1024 / rate + 0.001


def test_without_pyav_say_m4a_is_one_line_naming_the_extra(tmp_path: Path) -> None:
    out = tmp_path / "x.m4a"
    for args in (["say", "Hi.", "--engine", "piper", "-o", str(out)], ["say", "Hi.", "-o", "-", "--format", "aac"]):
        proc = subprocess.run([sys.executable, "-c", WITHOUT_PYAV, *args], capture_output=True, timeout=120)
        lines = proc.stderr.decode().strip().splitlines()
        assert proc.returncode == ExitStatus.OUTPUT, proc.stderr
        assert len(lines) == 1 and "pip install 'speakcli[aac]'" in lines[0], lines
        assert proc.stdout == b""
    assert not out.exists()


def test_without_pyav_say_m4a_fails_before_any_synthesis(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import speakcli.cli.scope

    def no_service(*args: object) -> None:
        raise AssertionError("a service was opened")

    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setattr(speakcli.cli.scope, "open_service", no_service)
    for fmt in ("m4a", "aac"):
        args = ["say", "Hi.", "--engine", "piper", "--no-server", "-o", str(tmp_path / f"x.{fmt}")]
        assert main(args) == ExitStatus.OUTPUT
        batch = ["batch", "-", "-d", str(tmp_path / "out"), "--format-out", fmt, "--engine", "piper"]
        assert main(batch) == ExitStatus.OUTPUT


def test_without_pyav_the_openai_route_answers_400_for_aac(monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    with serving() as served:
        monkeypatch.setitem(sys.modules, "av", None)
        body = {"model": "tts-1", "input": "Hi.", "voice": "alloy", "response_format": "aac"}
        reply = httpx.post(f"{served.url}/v1/audio/speech", json=body, timeout=60)
        assert reply.status_code == 400
        error = reply.json()["error"]
        assert error["code"] == "unsupported_format" and "speakcli[aac]" in error["message"]
        assert served.jobs == []  # refused before anything was queued
