"""`speakcli serve` over real HTTP on loopback: each dialect, every format, streaming, the queue, cancellation."""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from serve_helpers import Served, decode, long_text, pcm_of_wav, reference, serving
from speakcli.serving import Limits

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving() as served:
        yield served


@pytest.fixture
def client(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def wait_for(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# -- speakcli's own API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "rate"), [("wav", 22050), ("flac", 22050), ("ogg", 22050), ("opus", 48000), ("mp3", 22050), ("pcm", 22050)]
)
def test_synthesize_in_each_format_decodes_back(client: httpx.Client, fmt: str, rate: int) -> None:
    r = client.post("/v1/synthesize", json={"text": "Hello from the server.", "format": fmt})
    assert r.status_code == 200, r.text
    if fmt == "pcm":
        audio, got = np.frombuffer(r.content, "<i2").astype(np.float32) / 32767, 22050
    else:
        audio, got = decode(r.content)
    assert got == rate
    assert 0.8 < len(audio) / rate < 3.0
    assert float(np.sqrt(np.mean(audio**2))) > 0.01  # speech, not silence


def test_synthesize_gives_the_same_audio_as_speaking_alone(client: httpx.Client) -> None:
    text = "The same words, made by the server."
    r = client.post("/v1/synthesize", json={"text": text})
    assert np.array_equal(pcm_of_wav(r.content), reference(None, text))


def test_streaming_sends_audio_before_the_job_ends(server: Served, client: httpx.Client) -> None:
    with client.stream("POST", "/v1/synthesize", json={"text": long_text(12), "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav"
        chunks = r.iter_bytes()
        first = next(chunks)
        job = server.jobs[-1]
        assert first[:4] == b"RIFF"
        assert not job.done.is_set(), "the first bytes came only after the whole text was made"
        body = first + b"".join(chunks)
    audio, rate = decode(body)
    assert rate == 22050 and len(audio) / rate > 20


def test_a_client_that_disconnects_cancels_its_job_and_frees_the_worker(server: Served, client: httpx.Client) -> None:
    sentences = 30
    with client.stream("POST", "/v1/synthesize", json={"text": long_text(sentences), "stream": True}) as r:
        next(r.iter_bytes())
        job = server.jobs[-1]
    # Closed after the first bytes: the worker stops after the sentence in progress.
    wait_for(job.done.is_set, timeout=20)
    assert job.cancelled
    assert job.items < sentences  # sentence chunks plus pauses: far fewer than the whole text
    r2 = client.post("/v1/synthesize", json={"text": "Next, please."})
    assert r2.status_code == 200


def test_a_full_queue_answers_503_with_retry_after_at_once() -> None:
    with serving(limits=Limits(max_queue=1)) as served, httpx.Client(base_url=served.url, timeout=60) as client:
        results: list[httpx.Response] = []
        with served.worker_held():
            waiter = threading.Thread(
                target=lambda: results.append(client.post("/v1/synthesize", json={"text": "I wait my turn."}))
            )
            waiter.start()
            # The waiting request is admitted (and queued behind the held job) before the next one comes.
            wait_for(lambda: served.gateway.waiting >= 1 or len(served.jobs) == 1)
            wait_for(lambda: len(served.jobs) == 1)
            started = time.monotonic()
            refused = client.post("/v1/synthesize", json={"text": "No room for me."})
            assert time.monotonic() - started < 5
            assert refused.status_code == 503
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["code"] == "busy"
            # /v1/info answers while the worker is busy.
            assert client.get("/v1/info").json()["queue"]["waiting"] == 1
        waiter.join(30)
        assert results and results[0].status_code == 200


def test_info_and_health_answer_while_the_worker_is_busy(server: Served, client: httpx.Client) -> None:
    with server.worker_held():
        started = time.monotonic()
        info = client.get("/v1/info")
        health = client.get("/v1/health")
        assert time.monotonic() - started < 2
    assert info.status_code == 200 and info.json()["engine"] == "piper"
    assert health.json() == {"status": "ok"}


def test_concurrent_clients_each_get_their_own_audio(server: Served) -> None:
    texts = [f"Client {word} asks for its own words." for word in ("one", "two", "three", "four", "five", "six")]
    texts += ["A longer request, with two sentences. It should not mix.", "Short."]
    results: dict[int, bytes] = {}

    def ask(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            r = c.post("/v1/synthesize", json={"text": texts[i], "stream": i % 2 == 0})
            assert r.status_code == 200
            results[i] = r.content

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == list(range(len(texts)))
    for i, text in enumerate(texts):
        assert np.array_equal(pcm_of_wav(results[i]), reference(None, text)), f"client {i} got other audio"


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        ("/v1/synthesize", {"text": ""}, 400, "empty_text"),
        ("/v1/synthesize", {"text": "!!!"}, 400, "nothing_to_say"),
        ("/v1/synthesize", {"text": "x" * 4097}, 413, "too_large"),
        ("/v1/synthesize", {"text": "hi", "format": "wma"}, 400, "unsupported_format"),
        ("/v1/synthesize", {"text": "hi", "voice": "../../etc/passwd"}, 400, "voice"),
        ("/v1/synthesize", {"text": "hi", "voice": "/etc/passwd"}, 400, "voice"),
        ("/v1/synthesize", {"text": "hi", "voice": "nobody"}, 400, "voice"),
        ("/v1/synthesize", {"text": "hi", "language": "xx"}, 400, "unknown_language"),
        ("/v1/synthesize", {"text": "hi", "speed": 9}, 400, "invalid_input"),
        ("/v1/synthesize", {"voice": "joe"}, 400, "invalid_input"),
        ("/v1/synthesize", [1, 2], 400, "invalid_input"),
        ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "alloy", "response_format": "wma"}, 400,
         "unsupported_format"),
        ("/v1/precompute-embeddings", {}, 400, "cannot_clone"),
        ("/v1/batch-synthesize", {"items": []}, 400, "invalid_input"),
        ("/v1/batch-synthesize", {"items": [{"text": "a", "id": "x"}, {"text": "b", "id": "x"}]}, 400, "invalid_input"),
        ("/v1/batch-synthesize", {"items": [{"text": "a", "id": "../x"}]}, 400, "invalid_input"),
        ("/v1/batch-synthesize", {"items": [{"text": "a", "id": "."}]}, 400, "invalid_input"),
        ("/v1/batch-synthesize", {"items": [{"text": "a", "id": ".."}]}, 400, "invalid_input"),
        ("/v1/batch-synthesize", {"items": [{"text": "a", "id": "ok"}, {"text": "b", "id": "..."}]}, 400,
         "invalid_input"),
        ("/tts_to_audio/", {"text": "hi", "speaker_wav": "/home/user/secret.wav", "language": "en"}, 400, "voice"),
    ],
)  # fmt: skip
def test_bad_requests_get_a_json_error(client: httpx.Client, path: str, body: Any, status: int, code: str) -> None:
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code
    assert "\n" not in error["message"] and "Traceback" not in error["message"]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/synthesize", {"text": "hi", "voice": "../../etc/passwd"}),
        ("/v1/synthesize", {"text": "hi", "voice": "/etc/passwd"}),
        ("/v1/synthesize", {"text": "hi", "voice": "voices/joe"}),
        ("/v1/synthesize", {"text": "hi", "voice": ".."}),
        ("/v1/audio/speech", {"model": "tts-1", "input": "hi", "voice": "../joe"}),
        ("/tts_to_audio/", {"text": "hi", "speaker_wav": "/home/user/secret.wav", "language": "en"}),
    ],
)
def test_a_voice_given_as_a_path_is_refused_as_a_path(client: httpx.Client, path: str, body: Any) -> None:
    # On Piper every unknown voice is a 400 "voice" too: only the message tells a path refused as such (before
    # anything is looked up) from a name looked up and not found.
    r = client.post(path, json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "voice" and "is not allowed" in error["message"], error
    assert "no path separators" in error["message"]
    unknown = client.post("/v1/synthesize", json={"text": "hi", "voice": "nobody"}).json()["error"]
    assert unknown["code"] == "voice" and "is not allowed" not in unknown["message"], unknown


def test_unknown_routes_and_jobs_are_json_404s(client: httpx.Client) -> None:
    for path in ("/nope", "/v1/jobs/doesnotexist", "/v1/voices/nobody/sample"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found", path


def test_a_batch_job_runs_and_serves_each_item(client: httpx.Client) -> None:
    items = [{"text": "First item.", "id": "a"}, {"text": "Second item."}, {"text": "Third item.", "id": "c"}]
    r = client.post("/v1/batch-synthesize", json={"items": items, "format": "flac"})
    assert r.status_code == 202
    job = r.json()["job"]
    wait_for(lambda: client.get(f"/v1/jobs/{job}").json()["status"] in ("done", "failed"))
    status = client.get(f"/v1/jobs/{job}").json()
    assert status["status"] == "done" and status["counts"] == {"done": 3}
    assert [i["id"] for i in status["items"]] == ["a", "2", "c"]
    for item, spec in zip(status["items"], items, strict=True):
        audio = client.get(item["url"])
        assert audio.headers["content-type"] == "audio/flac"
        got, rate = decode(audio.content)
        want = reference(None, spec["text"])
        assert rate == 22050 and np.array_equal(np.round(got * 32768).astype(np.int16), want)


def test_item_ids_with_dots_that_are_not_only_dots_serve_their_audio(client: httpx.Client) -> None:
    ids = [".x", "v1.0", "a..b", "..z"]
    r = client.post("/v1/batch-synthesize", json={"items": [{"text": f"Item {i}.", "id": i} for i in ids]})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    wait_for(lambda: client.get(f"/v1/jobs/{job}").json()["status"] in ("done", "failed"))
    items = client.get(f"/v1/jobs/{job}").json()["items"]
    assert [i["id"] for i in items] == ids
    for item in items:
        audio = client.get(item["url"])
        assert audio.headers["content-type"] == "audio/wav", item
        assert decode(audio.content)[1] == 22050


def test_a_one_line_request_is_not_starved_by_a_long_batch(client: httpx.Client) -> None:
    items = [{"text": f"Batch line {i} goes here."} for i in range(60)]
    job = client.post("/v1/batch-synthesize", json={"items": items}).json()["job"]
    wait_for(lambda: client.get(f"/v1/jobs/{job}").json()["counts"].get("done", 0) >= 1)
    r = client.post("/v1/synthesize", json={"text": "Me first."})
    assert r.status_code == 200
    status = client.get(f"/v1/jobs/{job}").json()
    assert status["status"] == "running", "the one-line request waited for the whole batch"
    cancelled = client.delete(f"/v1/jobs/{job}").json()
    assert cancelled["status"] == "cancelled"
    wait_for(lambda: "queued" not in client.get(f"/v1/jobs/{job}").json()["counts"])
    counts = client.get(f"/v1/jobs/{job}").json()["counts"]
    assert counts.get("cancelled", 0) > 0 and counts.get("done", 0) < 60


def test_voices_list_names_without_server_paths(client: httpx.Client) -> None:
    voices = client.get("/v1/voices").json()["voices"]
    assert [v["name"] for v in voices] == ["joe"]
    assert "/" not in str(voices[0])


# -- OpenAI's speech API ----------------------------------------------------------------------------------------


def test_openai_sdk_speech_in_each_format(server: Served) -> None:
    from openai import OpenAI

    sdk = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    text = "Hello from an OpenAI client."
    default = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text)
    assert default.content[:3] == b"ID3" or default.content[0] == 0xFF  # MP3, OpenAI's default
    assert decode(default.content)[1] == 22050
    wav = sdk.audio.speech.create(model="tts-1", voice="alloy", input=text, response_format="wav")
    assert np.array_equal(pcm_of_wav(wav.content), reference(None, text))  # "alloy" is the default voice
    pcm = sdk.audio.speech.create(model="gpt-4o-mini-tts", voice="nova", input=text, response_format="pcm")
    seconds = len(reference(None, text)) / 22050
    assert abs(len(pcm.content) / 2 / 24000 - seconds) < 0.01  # 24 kHz 16-bit mono, as OpenAI's pcm
    for fmt in ("opus", "flac"):
        audio = sdk.audio.speech.create(model="tts-1", voice="echo", input=text, response_format=fmt)
        assert abs(len(decode(audio.content)[0]) / decode(audio.content)[1] - seconds) < 0.1
    with sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=long_text(4), response_format="wav"
    ) as streamed:
        body = b"".join(streamed.iter_bytes())
    assert np.array_equal(pcm_of_wav(body), reference(None, long_text(4)))


def test_openai_listings_as_open_webui_reads_them(client: httpx.Client) -> None:
    voices = client.get("/v1/audio/voices").json()["voices"]
    assert {"id": "joe", "name": "joe"} in voices and {"id": "alloy", "name": "alloy"} in voices
    assert {"id": "tts-1"} in client.get("/v1/audio/models").json()["models"]
    assert any(m["id"] == "tts-1" for m in client.get("/v1/models").json()["data"])


# -- xtts-api-server's API ----------------------------------------------------------------------------------------


def test_xtts_api_server_routes_as_sillytavern_calls_them(client: httpx.Client) -> None:
    speakers = client.get("/speakers").json()
    assert speakers[0]["name"] == "joe" and speakers[0]["voice_id"] == "joe"
    sample = client.get(speakers[0]["preview_url"])
    assert sample.status_code == 200 and decode(sample.content)[1] > 0
    assert client.get("/speakers_list").json() == ["joe"]
    assert client.get("/languages").json() == {"languages": {"English": "en"}}
    assert client.post("/set_tts_settings", json={"temperature": 0.7, "speed": 1.0}).status_code == 200
    text = "Hello from SillyTavern."
    r = client.post("/tts_to_audio/", json={"text": text, "speaker_wav": "joe", "language": "en"})
    assert r.headers["content-type"] == "audio/wav"
    assert np.array_equal(pcm_of_wav(r.content), reference(None, text))
    r = client.get("/tts_stream", params={"text": text, "speaker_wav": "joe.wav", "language": "en"})
    assert np.array_equal(pcm_of_wav(r.content), reference(None, text))


# -- the API key ------------------------------------------------------------------------------------------------------


def test_an_api_key_guards_every_route_but_health() -> None:
    with serving(api_key="s3cret") as served, httpx.Client(base_url=served.url, timeout=60) as c:
        assert c.get("/v1/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            r = c.get("/v1/info", headers=headers)
            assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
            assert c.post("/v1/synthesize", json={"text": "hi"}, headers=headers).status_code == 401
        assert c.get("/v1/info", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        from openai import AuthenticationError, OpenAI

        ok = OpenAI(base_url=f"{served.url}/v1", api_key="s3cret")
        assert ok.audio.speech.create(model="tts-1", voice="alloy", input="Hi.", response_format="wav").content
        with pytest.raises(AuthenticationError):
            OpenAI(base_url=f"{served.url}/v1", api_key="nope").audio.speech.create(
                model="tts-1", voice="alloy", input="Hi."
            )


def test_uploads_past_the_limits_are_refused_before_cloning() -> None:
    limits = Limits(max_upload_bytes=2000, max_clips=2)
    with serving(limits=limits) as served, httpx.Client(base_url=served.url, timeout=60) as c:
        small = ("files", ("a.wav", b"x" * 1000, "audio/wav"))
        big = ("files", ("a.wav", b"x" * 1500, "audio/wav"))
        too_many = c.post("/v1/clone-voice", data={"name": "v"}, files=[small, small, small])
        assert too_many.status_code == 413 and "limit is 2" in too_many.json()["error"]["message"]
        huge = c.post("/v1/clone-voice", data={"name": "v"}, files=[("files", ("a.wav", b"x" * 5000, "audio/wav"))])
        assert huge.status_code == 413 and huge.json()["error"]["code"] == "too_large"
        one_big = c.post("/v1/clone-voice", data={"name": "v"}, files=[big, ("files", ("b.wav", b"y" * 2500))])
        assert one_big.status_code == 413
        # Within the limits, this Piper server says it cannot clone, as a 400.
        assert c.post("/v1/clone-voice", data={"name": "v"}, files=[small]).json()["error"]["code"] == "cannot_clone"


def test_a_client_that_leaves_a_whole_file_request_cancels_it(server: Served) -> None:
    import socket
    from urllib.parse import urlsplit

    body = ('{"text": "' + long_text(30) + '"}').encode()
    parts = urlsplit(server.url)
    before = len(server.jobs)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            b"POST /v1/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        wait_for(lambda: len(server.jobs) > before and server.jobs[-1].items > 0)
        job = server.jobs[-1]
    wait_for(job.done.is_set, timeout=30)
    assert job.cancelled and job.items < 30


def test_text_that_is_not_valid_unicode_is_a_400_also_in_a_batch(client: httpx.Client) -> None:
    raw = b'{"text": "hello \\ud800 world"}'
    r = client.post("/v1/synthesize", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    raw = b'{"items": [{"text": "bad \\ud800 one", "id": "a"}, {"text": "Good two.", "id": "b"}]}'
    r = client.post("/v1/batch-synthesize", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "item a" in r.json()["error"]["message"]


def test_batch_items_count_toward_the_queue_and_running_jobs_are_capped() -> None:
    with serving(limits=Limits(max_queue=1, max_batch_jobs=1)) as served, httpx.Client(base_url=served.url) as c:
        with served.worker_held():
            job = c.post("/v1/batch-synthesize", json={"items": [{"text": "One."}, {"text": "Two."}]})
            assert job.status_code == 202
            wait_for(lambda: served.gateway.waiting == 1)  # the batch's first item, queued behind the held job
            assert c.post("/v1/synthesize", json={"text": "Me?"}).status_code == 503
            second = c.post("/v1/batch-synthesize", json={"items": [{"text": "Three."}]})
            assert second.status_code == 503 and second.json()["error"]["code"] == "busy"
        wait_for(lambda: c.get(f"/v1/jobs/{job.json()['job']}").json()["status"] == "done")


def test_an_ended_batch_job_lets_its_text_go(server: Served, client: httpx.Client) -> None:
    """A kept job costs what its status shows, not its text: 3,000 items of 4,000 characters (12 MB) are let go
    once cancelled, and a finished job's items hold no text either."""
    text = "Words to say, at length. " * 160  # 4,000 characters
    body = {"items": [{"text": f"{i} {text}"} for i in range(3000)]}
    gc.collect()
    tracemalloc.start()
    try:
        with server.worker_held():
            job = client.post("/v1/batch-synthesize", json=body).json()["job"]
            del body
            assert client.delete(f"/v1/jobs/{job}").json()["status"] == "cancelled"
            wait_for(lambda: "queued" not in client.get(f"/v1/jobs/{job}").json()["counts"])
        gc.collect()
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert client.get(f"/v1/jobs/{job}").json()["counts"] == {"cancelled": 3000}
    assert held < 3_000_000, f"a cancelled job still holds {held / 1e6:.1f} MB"

    done = client.post("/v1/batch-synthesize", json={"items": [{"text": "One."}, {"text": "Two."}]}).json()["job"]
    wait_for(lambda: client.get(f"/v1/jobs/{done}").json()["status"] == "done")
    assert [item.work for item in server.gateway.batches.get(done).items] == [None, None]


def test_oversized_bodies_are_refused_with_413_declared_or_chunked(server: Served, client: httpx.Client) -> None:
    big = b'{"text": "' + b"a" * 200_000 + b'"}'
    r = client.post("/v1/synthesize", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"

    def chunks() -> Iterator[bytes]:
        yield big[:100_000]
        yield big[100_000:]

    r = client.post("/v1/synthesize", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
