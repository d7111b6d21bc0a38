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
