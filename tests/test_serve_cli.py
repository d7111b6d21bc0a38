"""`speakcli serve` as a user runs it: a subprocess that listens, warns when exposed, and stops cleanly on SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from helpers import run_cli
from serve_helpers import decode, long_text, serve_process, write_clip

pytestmark = pytest.mark.slow


def wait_for_waiting(client: httpx.Client) -> None:
    deadline = time.monotonic() + 30
    while client.get("/v1/info").json()["queue"]["waiting"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_sigterm_mid_stream_cuts_the_stream_and_exits_0() -> None:
    with serve_process("--engine", "piper") as (proc, url, lines):
        assert url.startswith("http://127.0.0.1:")
        with httpx.Client(base_url=url, timeout=60) as client:
            assert client.get("/v1/health").json() == {"status": "ok"}
            queued: list[httpx.Response] = []
            with client.stream("POST", "/v1/synthesize", json={"text": long_text(40), "stream": True}) as r:
                chunks = r.iter_bytes()
                first = next(chunks)
                # A whole-file request waiting behind the stream: cut short, it must not come back partial.
                waiter = threading.Thread(
                    target=lambda: queued.append(httpx.post(f"{url}/v1/synthesize", json={"text": long_text(3)}))
                )
                waiter.start()
                wait_for_waiting(client)
                proc.send_signal(signal.SIGTERM)
                # It ends (after the sentence in progress), not hangs, and cut: never a shorter file that looks whole.
                with pytest.raises(httpx.RemoteProtocolError, match="incomplete"):
                    for _ in chunks:
                        pass
            waiter.join(30)
        assert queued[0].status_code == 503 and queued[0].json()["error"]["code"] == "busy"
        assert proc.wait(30) == 0
    assert lines[-1] == "speakcli: stopped"
    assert not any("Traceback" in ln for ln in lines), lines
    assert first[:4] == b"RIFF"


def test_binding_beyond_loopback_without_a_key_or_with_any_origin_warns() -> None:
    with serve_process("--engine", "piper", "--host", "0.0.0.0") as (proc, url, lines):
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert any("without --api-key" in ln for ln in lines), lines
    assert not any("--cors" in ln for ln in lines), lines
    key = "k3y-that-must-not-be-logged"
    args = ("--engine", "piper", "--host", "0.0.0.0", "--api-key", key, "--cors", "*", "--debug")
    with serve_process(*args) as (proc, url, lines):
        with httpx.Client(base_url=url.replace("0.0.0.0", "127.0.0.1"), timeout=30) as client:
            assert client.get("/v1/info").status_code == 401
            # A key in a link's query works, and is never written anywhere (uvicorn's access log is off).
            for given in (key, key + "-wrong"):
                client.get("/tts_stream", params={"text": "Hi.", "api_key": given})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not any("without --api-key" in ln for ln in lines), lines
    assert any("--cors '*'" in ln and "any web page" in ln for ln in lines), lines
    assert not any(key in ln or "/tts_stream" in ln for ln in lines), lines
    with serve_process("--engine", "piper", "--cors", "*") as (proc, url, lines):  # on loopback: no warning
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert not any("warning" in ln for ln in lines), lines


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--cors", "chat.example.org"), "--cors 'chat.example.org' is not a web origin; give scheme://host[:port]"),
        (("--cors", "https://x.org/path"), "--cors 'https://x.org/path' is not a web origin"),
        (("--private-lists",), "--private-lists keeps the lists behind the API key; add --api-key KEY"),
    ],
)
def test_bad_web_options_are_one_line_and_exit_2(args: tuple[str, ...], message: str) -> None:
    result = run_cli("serve", "--engine", "piper", "--port", "0", *args, timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 2 and stderr.startswith(f"speakcli: error: {message}"), stderr
    assert len(stderr.splitlines()) == 1, stderr


@pytest.mark.xtts
def test_clone_voice_upload_then_speak_with_it_on_tiny_xtts(
    tiny_xtts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = write_clip(tmp_path / "me.wav")
    monkeypatch.setenv("SPEAKCLI_XTTS_DIR", str(tiny_xtts_dir))
    with serve_process() as (proc, url, _lines), httpx.Client(base_url=url, timeout=120) as client:
        assert client.get("/v1/info").json()["engine"] == "xtts"
        files = [("files", ("me.wav", clip.read_bytes(), "audio/wav"))]
        r = client.post("/v1/clone-voice", data={"name": "me", "language": "en"}, files=files)
        assert r.status_code == 201, r.text
        assert r.json()["name"] == "me" and r.json()["latents"] == "computed"
        again = client.post("/v1/clone-voice", data={"name": "me"}, files=files)
        assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
        bad = client.post("/v1/clone-voice", data={"name": "../x"}, files=files)
        assert bad.status_code == 400
        noise = client.post("/v1/clone-voice", data={"name": "junk"}, files=[("files", ("a.wav", b"not audio"))])
        assert noise.status_code == 400 and noise.json()["error"]["code"] == "voice"
        # A clip on the server's disk is never a voice a request can name, though XTTS could clone from it.
        for voice in (str(clip), "me.wav"):
            by_path = client.post("/v1/synthesize", json={"text": "Hi.", "voice": voice})
            assert by_path.status_code == 400 and by_path.json()["error"]["code"] == "voice", voice
        by_path = client.post("/tts_to_audio/", json={"text": "Hi.", "speaker_wav": str(clip), "language": "en"})
        assert by_path.status_code == 400
        spoken = client.post("/v1/synthesize", json={"text": "Hello in my voice.", "voice": "me"})
        assert spoken.status_code == 200 and decode(spoken.content)[1] == 24000
        with_text = client.post("/v1/clone-voice", data={"name": "me2", "text": "Straight away."}, files=files)
        assert with_text.status_code == 200 and decode(with_text.content)[1] == 24000
        pre = client.post("/v1/precompute-embeddings", json={"voices": ["me", "me2"]}).json()["voices"]
        assert [(v["voice"], v["status"]) for v in pre] == [("me", "cached"), ("me2", "cached")]
        assert "me" in [v["name"] for v in client.get("/v1/voices").json()["voices"]]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def test_a_port_in_use_is_one_line_and_exit_2_before_loading() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_cli("serve", "--engine", "piper", "--port", str(port), timeout=60)
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert (
        stderr
        == f"speakcli: error: cannot listen on 127.0.0.1:{port}: Address already in use; pick another --port or --host\n"
    )


@pytest.mark.xtts
@pytest.mark.parametrize(
    ("signum", "status", "last"), [(signal.SIGTERM, 0, "stopped"), (signal.SIGINT, 130, "interrupted")]
)
def test_a_signal_while_the_model_loads_exits_cleanly_at_every_moment(
    tiny_xtts_dir: Path, monkeypatch: pytest.MonkeyPatch, signum: int, status: int, last: str
) -> None:
    # The load runs on the worker thread, partly in native code; a process that ended the ordinary way then
    # aborted ("terminate called without an active exception", 134) in some runs. A signal at any moment of it
    # must end the process at once with its status and one line.
    monkeypatch.setenv("SPEAKCLI_XTTS_DIR", str(tiny_xtts_dir))
    moments = (0.0, 0.3, 1.0, 2.0, 4.0) if signum == signal.SIGTERM else (0.0, 1.0)
    for delay in moments:
        proc = subprocess.Popen(
            [sys.executable, "-m", "speakcli", "serve", "--engine", "xtts", "--port", "0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert proc.stderr is not None
            first = proc.stderr.readline()
            assert first.startswith("speakcli: loading xtts"), first
            time.sleep(delay)  # the moment of the signal, not synchronisation
            proc.send_signal(signum)
            rest = proc.stderr.read()
            assert proc.wait(60) == status, (delay, rest)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
        lines = rest.splitlines()
        assert lines and lines[-1] == f"speakcli: {last}", (delay, rest)
        assert not any("terminate" in ln or "Traceback" in ln for ln in lines), (delay, rest)
