"""Warm starts, in process: which adverts are trusted and matched, and what the client sends to whom."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from serve_helpers import reference, serving
from speakcli.adverts import Advert, advertise, adverts_dir, find_servers, new_secret
from speakcli.engines import EngineSpec, choose_engine
from speakcli.remote import Unavailable, open_speech
from speakcli.settings import Settings, load_settings
from speakcli.testing import FakeEngine
from speakcli.warm import warm_speech

TEXT = "Secret text for the server only."
KEY = "key-0123456789"


def piper() -> Settings:
    return load_settings({"engine": "piper"})


def advert_for(url: str, settings: Settings | None = None, **changes: Any) -> Advert:
    """The advert `speakcli serve` would write for a Piper server at `url` (this process's pid: alive)."""
    settings = settings or piper()
    made = Advert.of(url, choose_engine(settings), settings, auth=False, secret=new_secret(), max_text=4096)
    return replace(made, **changes)


def test_a_live_matching_server_is_found_and_a_dead_ones_advert_is_removed() -> None:
    settings = piper()
    spec = choose_engine(settings)
    path = advertise(advert_for("http://127.0.0.1:9"))
    assert [a.url for a in find_servers(spec, settings)] == ["http://127.0.0.1:9"]
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    path.unlink()
    stale_path = advertise(advert_for("http://127.0.0.1:9", pid=int(dead.stdout)))
    assert find_servers(spec, settings) == [] and not stale_path.exists()


XTTS = EngineSpec("xtts", Path("/models/a"), "cpu", precision="int8")
SERVER = {"voices_dir": "/voices", "pause": 0.2, "voice": None}


@pytest.mark.parametrize(
    ("spec", "settings", "found"),
    [
        (XTTS, {}, True),
        (XTTS, {"voice": "alice"}, True),  # a request that names its voice: the server's default does not matter
        (replace(XTTS, name="piper", model_dir=None), {}, False),
        (replace(XTTS, model_dir=Path("/models/b")), {}, False),
        (replace(XTTS, device="cuda"), {}, False),
        (replace(XTTS, precision="fp32"), {}, False),  # `say --precision fp32` never speaks through an int8 server
        (replace(XTTS, precision="auto"), {}, False),
        (XTTS, {"voices_dir": "/elsewhere"}, False),
        (XTTS, {"pause": 0.5}, False),
    ],
)
def test_only_a_server_that_shapes_the_audio_as_the_local_run_would_is_used(
    spec: EngineSpec, settings: dict[str, Any], found: bool
) -> None:
    server = load_settings(SERVER)
    advertise(Advert.of("http://127.0.0.1:9", XTTS, server, auth=False, secret=new_secret(), max_text=4096))
    assert bool(find_servers(spec, load_settings({**SERVER, **settings}))) is found


def test_a_server_with_a_default_voice_serves_only_runs_that_name_theirs() -> None:
    server = load_settings({**SERVER, "voice": "alice"})
    advertise(Advert.of("http://127.0.0.1:9", XTTS, server, auth=False, secret=new_secret(), max_text=4096))
    assert find_servers(XTTS, load_settings(SERVER)) == []  # it would speak as alice, the local run as the default
    assert find_servers(XTTS, load_settings({**SERVER, "voice": "bob"}))


def test_adverts_are_private_and_hold_no_key() -> None:
    path = advertise(advert_for("http://127.0.0.1:9", auth=True))
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(path.parent).st_mode & 0o777 == 0o700 and os.stat(path.parent.parent).st_mode & 0o777 == 0o700
    assert KEY not in path.read_text() and "key" not in path.read_text().lower().replace('"auth"', "")


def test_an_advert_that_is_not_json_is_skipped() -> None:
    folder = adverts_dir()
    folder.mkdir(parents=True, mode=0o700)
    folder.parent.chmod(0o700)
    path = folder / "1.json"
    path.write_bytes(b"\x80\x04\x95 not json, maybe a pickle")
    path.chmod(0o600)
    assert find_servers(choose_engine(piper()), piper()) == []


class Impostor:
    """An HTTP server on loopback that records every byte it receives and answers everything with audio, as a
    program that took a dead server's port would; it knows no advert's secret."""

    def __init__(self) -> None:
        received = self.received = bytearray()
        self.connections = 0
        impostor = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                impostor.connections += 1
                received.extend(self.requestline.encode() + b"\n" + bytes(self.headers))
                length = int(self.headers.get("Content-Length") or 0)
                received.extend(self.rfile.read(length))
                if self.path.startswith("/v1/identity"):
                    body = json.dumps({"proof": "0" * 64}).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                else:
                    body = b"RIFF\xff\xff\xff\xffWAVEfmt " + bytes(28)
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/wav")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="speakcli-test-impostor")

    def __enter__(self) -> Impostor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_an_impostor_at_a_live_adverts_address_never_gets_text_or_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKCLI_API_KEY", KEY)
    with Impostor() as impostor:
        advertise(advert_for(impostor.url, auth=True))  # a server's advert; its port now someone else's
        assert warm_speech(piper(), TEXT, buffered=True) is None
    assert impostor.connections == 1 and impostor.received.startswith(b"GET /v1/identity?nonce=")  # it was asked
    assert TEXT.encode() not in impostor.received and KEY.encode() not in impostor.received
    assert b"authorization" not in impostor.received.lower()


@pytest.mark.parametrize(
    "plant",
    ["folder open to all", "folder open to the group", "file open to others", "file of another user", "link"],
)
def test_an_advert_that_is_not_private_is_never_used(plant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKCLI_API_KEY", KEY)
    with Impostor() as impostor:
        path = advertise(advert_for(impostor.url, auth=True))
        if plant == "folder open to all":
            path.parent.chmod(0o777)
        elif plant == "folder open to the group":
            path.parent.parent.chmod(0o770)
        elif plant == "file open to others":
            path.chmod(0o644)
        elif plant == "file of another user":
            if os.getuid() != 0:
                pytest.skip("only root can give a file to another user")
            os.chown(path, 65534, 65534)
        else:
            target = path.with_name("real")
            path.rename(target)
            path.symlink_to(target)
        assert warm_speech(piper(), TEXT, buffered=True) is None
    assert impostor.connections == 0 and not impostor.received


def test_a_fifo_for_an_advert_does_not_hang_the_lookup() -> None:
    path = advertise(advert_for("http://127.0.0.1:9"))
    path.unlink()
    os.mkfifo(path, 0o600)
    assert find_servers(choose_engine(piper()), piper()) == []


@contextmanager
def mute_listener() -> Iterator[socket.socket]:
    """A socket that accepts connections (the kernel does, from its backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield sock
    finally:
        sock.close()


def test_a_server_that_accepts_and_never_answers_is_given_up_for_local_speech() -> None:
    with mute_listener() as sock:
        advertise(advert_for(f"http://127.0.0.1:{sock.getsockname()[1]}"))
        assert warm_speech(piper(), TEXT, buffered=True) is None
        sock.settimeout(10)
        conn, _ = sock.accept()  # the client did connect: it gave up waiting for an answer
        with conn:
            conn.settimeout(10)
            sent = conn.recv(65536)
    assert sent.startswith(b"GET /v1/identity?nonce=") and TEXT.encode() not in sent


def test_a_voice_given_as_a_file_and_ssml_stay_local(tmp_path: Path) -> None:
    # The fake engine takes any name as a speaker: a server would speak each of these if it were asked.
    with serving(engine=FakeEngine(), identity=(secret := new_secret())) as served:
        advertise(advert_for(served.url, secret=secret))
        (tmp_path / "myclip").write_bytes(b"RIFF")  # an existing file with no extension: a path, as locally
        for voice in ("me.wav", "clips/me", "myclip"):
            assert warm_speech(load_settings({"engine": "piper", "voice": voice}), TEXT, buffered=True) is None
        assert warm_speech(piper(), "<speak>Hi.</speak>", buffered=True) is None
        prolog = '<?xml version="1.0"?>\n<!-- a note -->\n<speak>Hi.</speak>'  # SSML after a prolog is SSML too
        assert warm_speech(piper(), prolog, buffered=True) is None
        assert warm_speech(piper(), "Hi.", ssml=True, buffered=True) is None
        assert served.jobs == []
        remote = warm_speech(load_settings({"engine": "piper", "voice": "nobody"}), TEXT, buffered=True)
        assert remote is not None and list(remote) and len(served.jobs) == 1  # the control: a name goes there


@pytest.mark.slow
def test_speaking_through_a_proven_server_gives_the_local_audio() -> None:
    text = "Spoken by the warm server."
    with serving(identity=(secret := new_secret())) as served:
        advert = advert_for(served.url, secret=secret)
        remote = open_speech(advert, text, piper(), None, buffered=True)
        audio = np.concatenate(list(remote))
        assert remote.sample_rate == 22050
        assert np.array_equal(np.round(audio * 32767).astype(np.int16), reference(None, text))
        with pytest.raises(Unavailable):  # the right address, the wrong secret
            open_speech(replace(advert, secret=new_secret()), text, piper(), None)
    with pytest.raises(Unavailable):  # gone
        open_speech(advert, text, piper(), None)
