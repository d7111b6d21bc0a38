"""Warm starts: a server's advert is found only when it is alive and speaks as the local run would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serve_helpers import reference, serving
from speakcli.engines import choose_engine
from speakcli.errors import VoiceError
from speakcli.remote import Advert, Unavailable, advertise, adverts_dir, find_server, speak_remote, warm_server
from speakcli.settings import load_settings


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    return tmp_path / "run"


def test_a_live_matching_server_is_found_and_others_are_not() -> None:
    piper = load_settings({"engine": "piper"})
    spec = choose_engine(piper)
    path = advertise(Advert.of("http://127.0.0.1:9", spec, piper, auth=False))
    assert find_server(spec, piper) is not None
    other = load_settings({"engine": "piper", "voices_dir": "/elsewhere"})
    assert find_server(choose_engine(other), other) is None  # another voice library: not the same speech
    # A dead server's advert is ignored and removed.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = Advert(**{**json.loads(path.read_text()), "pid": int(dead.stdout)})
    path.unlink()
    stale_path = advertise(stale)
    assert find_server(spec, piper) is None and not stale_path.exists()


def test_an_advert_that_is_not_json_is_skipped(runtime_dir: Path) -> None:
    folder = adverts_dir()
    folder.mkdir(parents=True)
    (folder / "1.json").write_bytes(b"\x80\x04\x95 not json, maybe a pickle")
    piper = load_settings({"engine": "piper"})
    assert find_server(choose_engine(piper), piper) is None


def test_a_voice_given_as_a_file_stays_local() -> None:
    piper = load_settings({"engine": "piper"})
    advertise(Advert.of("http://127.0.0.1:9", choose_engine(piper), piper, auth=False))
    assert warm_server(piper, None) == "http://127.0.0.1:9"
    assert warm_server(piper, "me.wav") is None and warm_server(piper, "clips/me") is None


@pytest.mark.slow
def test_speaking_through_a_running_server_gives_the_local_audio() -> None:
    text = "Spoken by the warm server."
    with serving() as served:
        settings = load_settings({"engine": "piper"})
        remote = speak_remote(served.url, text, settings, None)
        audio = np.concatenate(list(remote.chunks))
        assert remote.sample_rate == 22050
        assert np.array_equal(np.round(audio * 32767).astype(np.int16), reference(None, text))
        with pytest.raises(VoiceError):
            speak_remote(served.url, text, settings, "nobody")
        url = served.url
    with pytest.raises(Unavailable):
        speak_remote(url, text, load_settings({"engine": "piper"}), None)


def test_adverts_live_in_a_folder_only_the_user_can_read() -> None:
    piper = load_settings({"engine": "piper"})
    path = advertise(Advert.of("http://127.0.0.1:9", choose_engine(piper), piper, auth=True))
    assert os.stat(path.parent).st_mode & 0o077 == 0
    assert "key" not in path.read_text().lower().replace('"auth"', "")


@pytest.mark.slow
def test_say_speaks_through_a_running_server_and_stays_local_when_it_should(tmp_path: Path) -> None:
    import httpx

    from helpers import run_cli
    from serve_helpers import serve_process

    with serve_process("--engine", "piper") as (proc, url, _lines), httpx.Client(base_url=url) as client:
        served = lambda: client.get("/v1/info").json()["served"]  # noqa: E731
        assert run_cli("say", "Through the server.", "--engine", "piper", "-o", str(tmp_path / "a.wav")).returncode == 0
        assert served() == 1
        audio, rate = __import__("helpers").read(tmp_path / "a.wav")
        assert rate == 22050 and len(audio) / rate > 0.5
        # Streamed to stdout through the server too.
        piped = run_cli("say", "Piped.", "--engine", "piper", "-o", "-")
        assert piped.returncode == 0 and piped.stdout[:4] == b"RIFF" and served() == 2
        # Local: asked not to, SSML, a pause of its own, a voice that is a file, another engine's settings.
        clip = tmp_path / "clip.wav"
        clip.write_bytes((tmp_path / "a.wav").read_bytes())
        for extra in (["--no-server"], ["--pause", "0.5"], ["--voice", str(clip)]):
            r = run_cli(
                "say", "Here.", "--engine", "piper", "-o", str(tmp_path / f"{len(extra)}{extra[0]}.wav"), *extra
            )
            assert r.returncode in (0, 3), r.stderr  # a clip voice on Piper is a voice error, made locally
        for i, doc in enumerate(("<speak>Hi.</speak>", '<?xml version="1.0"?>\n<!-- a note -->\n<speak>Hi.</speak>')):
            ssml = run_cli("say", doc, "--engine", "piper", "-o", str(tmp_path / f"s{i}.wav"))
            assert ssml.returncode == 0
        assert served() == 2
        # A voice the server does not have is its error, worded as ours.
        r = run_cli("say", "Hi.", "--engine", "piper", "--voice", "nobody", "-o", str(tmp_path / "n.wav"))
        assert r.returncode == 3 and b"nobody" in r.stderr
        proc.send_signal(__import__("signal").SIGTERM)
        assert proc.wait(30) == 0
    # The server is gone (and its advert with it): say speaks locally.
    assert run_cli("say", "Alone.", "--engine", "piper", "-o", str(tmp_path / "alone.wav")).returncode == 0
