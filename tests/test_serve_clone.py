"""HTTP on the tiny XTTS: cloning one name at a time, in languages the engine speaks, clips named as sent; the
language list."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile as sf

from serve_helpers import Served, serving, write_clip

pytestmark = [pytest.mark.slow, pytest.mark.xtts]


@pytest.fixture
def server(tiny_xtts_dir: Path, voices_dir: Path) -> Iterator[Served]:
    with serving({"engine": "xtts", "model_dir": tiny_xtts_dir, "voices_dir": voices_dir}) as served:
        yield served


@pytest.fixture
def clip(tmp_path: Path) -> bytes:
    return write_clip(tmp_path / "me.wav").read_bytes()


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def clone(url: str, name: str, files: list[tuple[str, bytes]], **form: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=120) as client:
        return client.post(
            "/v1/clone-voice", data={"name": name, **form}, files=[("files", (n, d, "audio/wav")) for n, d in files]
        )


def test_concurrent_clones_of_one_new_name_give_one_201_and_409s_at_once(server: Served, clip: bytes) -> None:
    replies: list[httpx.Response] = []

    def ask() -> None:
        replies.append(clone(server.url, "twin", [("me.wav", clip)]))

    threads = [threading.Thread(target=ask) for _ in range(5)]
    with server.worker_held():
        for t in threads:
            t.start()
        # The first clone waits for the worker, held here; the others are refused without waiting for it.
        wait_for(lambda: len(replies) == 4)
        assert [r.status_code for r in replies] == [409] * 4, [r.text for r in replies]
    for t in threads:
        t.join(120)
    assert sorted(r.status_code for r in replies) == [201, 409, 409, 409, 409]
    for r in replies[:4]:
        assert r.json()["error"]["code"] == "conflict" and "twin" in r.json()["error"]["message"]
    assert server.service.library.find("twin") is not None
    again = clone(server.url, "twin", [("me.wav", clip)])
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_a_language_the_engine_lacks_is_refused_and_nothing_is_saved(
    server: Served, clip: bytes, voices_dir: Path
) -> None:
    r = clone(server.url, "zed", [("me.wav", clip)], language="zz")
    assert r.status_code == 400 and r.json()["error"]["code"] == "unknown_language", r.text
    assert "'zz'" in r.json()["error"]["message"]
    assert not (voices_dir / "zed").exists()
    ok = clone(server.url, "zed", [("me.wav", clip)], language="de")
    assert ok.status_code == 201 and ok.json()["language"] == "de"


def test_clone_errors_name_clips_as_the_client_did_never_a_server_path(
    server: Served, clip: bytes, voices_dir: Path
) -> None:
    buf = io.BytesIO()
    sf.write(buf, np.zeros(22050 * 3, np.float32), 22050, format="WAV")
    cases = {
        "junk": [("my take.wav", b"not audio at all")],
        "hush": [("me.wav", clip), ("quiet room.wav", buf.getvalue())],
    }
    for name, files in cases.items():
        r = clone(server.url, name, files)
        assert r.status_code == 400 and r.json()["error"]["code"] == "voice", r.text
        message = r.json()["error"]["message"]
        assert files[-1][0] in message, message
        for server_side in ("/tmp", "speakcli-upload", "clip1", "clip2", str(voices_dir)):
            assert server_side not in message, message
    made = clone(server.url, "mine", [("../../../etc/take 1.wav", clip)])
    assert made.status_code == 201, made.text
    assert made.json()["clips"] == ["take 1.wav"] and made.json()["description"] == "cloned from take 1.wav"
    again = clone(server.url, "mine", [("take 1.wav", clip)])
    assert again.status_code == 409
    assert again.json()["error"]["message"] == "voice 'mine' already exists in the server's voices folder"


def test_the_xtts_api_language_list_names_every_language_the_model_speaks(server: Served) -> None:
    # SillyTavern shows these names and sends the code back: Chinese is "zh" here (coqui's "zh-cn").
    with httpx.Client(base_url=server.url, timeout=30) as client:
        listed = client.get("/languages").json()["languages"]
    codes = server.service.engine.languages()
    assert sorted(listed.values()) == sorted(codes) and listed["Chinese"] == "zh" and listed["German"] == "de"
    assert all(name != code for name, code in listed.items())  # none shown as its bare code
