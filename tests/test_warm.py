"""Warm starts as a user meets them: `say` and `speakcli.speak` through a running server, or exactly as without."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pytest

import speakcli
from helpers import read, run_cli
from serve_helpers import Served, serve_process, serving
from speakcli.adverts import Advert, advertise, new_secret
from speakcli.engines import choose_engine
from speakcli.errors import StreamCutError
from speakcli.remote import Unavailable, open_speech
from speakcli.serving import Limits, SpeechRequest
from speakcli.settings import load_settings
from speakcli.testing import FakeEngine

TEXT = "One. Two. Three."


def piper_advert(url: str, secret: str, max_text: int = 4096) -> Advert:
    settings = load_settings({"engine": "piper"})
    return Advert.of(url, choose_engine(settings), settings, auth=False, secret=secret, max_text=max_text)


@contextmanager
def warm(engine: FakeEngine | None = None, limits: Limits | None = None) -> Iterator[tuple[Served, Advert]]:
    """A server (Piper, or `engine` posing as it: 1,000 Hz audio, told apart from Piper's 22,050 Hz) advertised as
    `speakcli serve` advertises itself, so `say --engine piper` here uses it."""
    secret = new_secret()
    with serving(engine=engine, limits=limits, identity=secret) as served:
        advert = piper_advert(served.url, secret)
        advertise(advert)
        yield served, advert


def say(*args: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "speakcli", "say", *args, "--engine", "piper"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**__import__("os").environ, **env},
    )


def stepped() -> tuple[FakeEngine, threading.Semaphore]:
    steps = threading.Semaphore(0)
    return FakeEngine(steps=steps, max_chars=8), steps


def test_the_client_gives_up_a_cut_stream_or_reports_it_once_audio_went_out() -> None:
    for buffered in (True, False):
        engine, steps = stepped()
        with warm(engine) as (served, advert):
            steps.release()
            remote = open_speech(advert, TEXT, load_settings({}), None, buffered=buffered)
            chunks = iter(remote)
            assert len(next(chunks)) and served.answered.acquire(timeout=30)
            served.gateway.stop_accepting()
            steps.release(3)
            with pytest.raises(Unavailable if buffered else StreamCutError):
                list(chunks)


@pytest.mark.slow
def test_say_to_a_file_never_writes_a_cut_stream_and_finishes_locally(tmp_path: Path) -> None:
    engine, steps = stepped()
    with warm(engine) as (served, _):
        steps.release()
        proc = say(TEXT, "-o", str(tmp_path / "out.wav"))
        assert served.answered.acquire(timeout=60)  # its stream began: headers and the first sentence
        served.gateway.stop_accepting()
        steps.release(3)
        _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    audio, rate = read(tmp_path / "out.wav")
    assert rate == 22050 and len(audio) / rate > 1.0  # made here, whole: not the server's 1,000 Hz stream


@pytest.mark.slow
def test_say_to_stdout_fails_in_one_line_when_the_stream_is_cut_after_audio_went_out() -> None:
    engine, steps = stepped()
    with warm(engine) as (served, _):
        steps.release()
        proc = say(TEXT, "-o", "-")
        assert served.answered.acquire(timeout=60)
        served.gateway.stop_accepting()
        steps.release(3)
        out, err = proc.communicate(timeout=240)
    assert proc.returncode == 7, err
    assert err.decode().count("\n") == 1 and "the server stopped after" in err.decode() and b"Traceback" not in err
    assert out[:4] == b"RIFF" and int.from_bytes(out[24:28], "little") == 1000  # the server's audio went out


@pytest.mark.slow
def test_say_queued_on_a_server_that_stops_speaks_locally(tmp_path: Path) -> None:
    engine, steps = stepped()
    steps.release(10)
    with warm(engine) as (served, _):
        with served.worker_held():
            proc = say("Queued.", "-o", str(tmp_path / "out.wav"))
            assert served.queued.acquire(timeout=60)
            served.gateway.stop_accepting()
        _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert read(tmp_path / "out.wav")[1] == 22050 and engine.texts == []


@pytest.mark.slow
def test_say_waiting_on_a_server_that_stops_answering_speaks_locally(tmp_path: Path) -> None:
    with warm() as (served, _), served.worker_held():
        proc = say("Waiting.", "-o", str(tmp_path / "out.wav"))
        assert served.queued.acquire(timeout=60)  # proven, sent, and waiting for the worker
        with served.frozen():  # as if stopped now: the wait must end in local speech, not last
            _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert read(tmp_path / "out.wav")[1] == 22050 and len(served.jobs) == 1


@pytest.mark.slow
def test_say_on_a_busy_server_speaks_locally(tmp_path: Path) -> None:
    with warm(limits=Limits(max_queue=1)) as (served, _), served.worker_held():
        queued = served.gateway.speak(SpeechRequest("Taking the last place."))
        r = run_cli("say", "Hi.", "--engine", "piper", "-o", str(tmp_path / "out.wav"))
        queued.cancel()
    assert r.returncode == 0 and b"error" not in r.stderr and read(tmp_path / "out.wav")[1] == 22050
    assert served.jobs == [queued]  # the server refused it (503): nothing else was queued


@pytest.mark.slow
def test_say_on_a_stopped_server_speaks_locally_and_the_server_lives_on(tmp_path: Path) -> None:
    with serve_process("--engine", "piper") as (proc, url, _lines):
        proc.send_signal(signal.SIGSTOP)
        try:
            r = run_cli("say", "While it sleeps.", "--engine", "piper", "-o", str(tmp_path / "out.wav"))
        finally:
            proc.send_signal(signal.SIGCONT)
        assert r.returncode == 0, r.stderr
        assert read(tmp_path / "out.wav")[1] == 22050
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/v1/info").json()["served"] == 0  # the text never reached it
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.slow
def test_say_behaves_as_locally_whatever_the_server_refuses(tmp_path: Path) -> None:
    clip = tmp_path / "myclip"  # an existing WAV with no extension: a voice file for a local run
    with serve_process("--engine", "piper", "--max-text", "20", "--api-key", "right") as (proc, url, _lines):
        with httpx.Client(base_url=url, timeout=30, headers={"Authorization": "Bearer right"}) as client:
            served = lambda: client.get("/v1/info").json()["served"]  # noqa: E731
            out = str(tmp_path / "a.wav")
            assert (
                run_cli("say", "Hi.", "--engine", "piper", "-o", out, env={"SPEAKCLI_API_KEY": "right"}).returncode == 0
            )
            assert served() == 1  # the control: this one goes through the server
            clip.write_bytes(Path(out).read_bytes())
            cases = [
                (["Hi."], {"SPEAKCLI_API_KEY": "wrong"}),  # 401 there; no key needed here
                (["Longer than twenty characters."], {"SPEAKCLI_API_KEY": "right"}),  # over its --max-text
                (["Hi.", "--voice", "myclip"], {"SPEAKCLI_API_KEY": "right"}),  # a file here, a name there
            ]
            for args, env in cases:
                flags = [*args, "--engine", "piper", "-o", str(tmp_path / "b.wav"), "--force"]
                warm_run = run_cli("say", *flags, env=env)
                local = run_cli("say", *flags, "--no-server", env=env)
                # Piper's noise varies a line's length from run to run: the same line, whatever its seconds.
                said = [re.sub(rb"\(\d+\.\d s", b"(N s", r.stderr) for r in (warm_run, local)]
                assert (warm_run.returncode, said[0]) == (local.returncode, said[1]), args
            assert served() == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


@pytest.mark.slow
def test_say_speaks_through_a_running_server_and_stays_local_when_it_should(tmp_path: Path) -> None:
    with serve_process("--engine", "piper") as (proc, url, _lines), httpx.Client(base_url=url) as client:
        served = lambda: client.get("/v1/info").json()["served"]  # noqa: E731
        assert run_cli("say", "Through the server.", "--engine", "piper", "-o", str(tmp_path / "a.wav")).returncode == 0
        assert served() == 1
        audio, rate = read(tmp_path / "a.wav")
        assert rate == 22050 and len(audio) / rate > 0.5
        piped = run_cli("say", "Piped.", "--engine", "piper", "-o", "-")
        assert piped.returncode == 0 and piped.stdout[:4] == b"RIFF" and served() == 2
        # Local: asked not to, SSML, another pause than the server's, a voice that is a file.
        clip = tmp_path / "clip.wav"
        clip.write_bytes((tmp_path / "a.wav").read_bytes())
        for extra in (["--no-server"], ["--pause", "0.5"], ["--voice", str(clip)]):
            r = run_cli(
                "say", "Here.", "--engine", "piper", "-o", str(tmp_path / f"{len(extra)}{extra[0]}.wav"), *extra
            )
            assert r.returncode in (0, 3), r.stderr  # a clip voice on Piper is a voice error, made locally
        ssml = run_cli("say", "<speak>Hi.</speak>", "--engine", "piper", "-o", str(tmp_path / "s.wav"))
        assert ssml.returncode == 0
        assert served() == 2
        # A voice the server does not have: refused there, so the local run reports it, in its words.
        r = run_cli("say", "Hi.", "--engine", "piper", "--voice", "nobody", "-o", str(tmp_path / "n.wav"))
        assert r.returncode == 3 and b"nobody" in r.stderr
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    # The server is gone (and its advert with it): say speaks locally.
    assert run_cli("say", "Alone.", "--engine", "piper", "-o", str(tmp_path / "alone.wav")).returncode == 0


def test_the_python_api_speaks_through_a_server_unless_told_not_to(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = FakeEngine()
    with warm(engine):
        speech = speakcli.speak(TEXT, engine="piper")
        assert speech.sample_rate == 1000 and engine.texts  # the server's (fake) audio
        texts = len(engine.texts)
        assert speakcli.speak("Here.", engine="piper", server=False).sample_rate == 22050
        monkeypatch.setenv("SPEAKCLI_NO_SERVER", "1")
        assert speakcli.speak("Here.", engine="piper").sample_rate == 22050
        assert len(engine.texts) == texts


def test_the_python_api_speaks_locally_when_the_servers_stream_is_cut() -> None:
    engine, steps = stepped()
    got: list[speakcli.Speech] = []
    with warm(engine) as (served, _):
        steps.release()
        speaking = threading.Thread(target=lambda: got.append(speakcli.speak(TEXT, engine="piper")))
        speaking.start()
        assert served.answered.acquire(timeout=60)
        served.gateway.stop_accepting()
        steps.release(3)
        speaking.join(240)
    assert got[0].sample_rate == 22050 and np.abs(got[0].audio).max() > 0.05
