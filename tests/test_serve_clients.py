"""The real clients' web requests, replayed as they send them: SillyTavern's providers in a browser (CORS
preflights, /set_tts_settings, `<audio src>` with a key), Open WebUI's listings without a key, whole WAV sizes."""

from __future__ import annotations

import asyncio
import io
import struct
import wave
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from fastapi import Request

from serve_helpers import Served, pcm_of_wav, reference, serving
from speakcli.web.app import ROUTERS

pytestmark = pytest.mark.slow

SILLYTAVERN = "http://localhost:8000"  # SillyTavern's own address: the Origin of its page's requests
TEXT = "Hello from SillyTavern."

# The preflights a browser sends before SillyTavern's calls (xtts.js and extensions.js's doExtrasFetch), as the
# Fetch standard writes them: the method, and the non-simple headers lowercased, sorted, joined by commas.
PREFLIGHTS = [
    ("/tts_to_audio/", "POST", "cache-control,content-type"),
    ("/set_tts_settings", "POST", "cache-control,content-type"),
    ("/tts_to_audio/", "POST", "authorization,cache-control,content-type"),  # with an Extras API key set
    ("/speakers", "GET", "authorization"),
    ("/speakers", "GET", "authorization,bypass-tunnel-reminder"),  # SillyTavern before 1.11: every Extras call
    ("/tts_stream/", "GET", "authorization"),
    ("/tts_stream", "GET", "authorization"),
    # OpenAI's route from a page (the OpenAI JS SDK in a browser adds its x-stainless-* headers).
    ("/v1/audio/speech", "POST", "authorization,content-type"),
    ("/v1/audio/speech", "POST", "authorization,content-type,x-stainless-lang,x-stainless-retry-count"),
]
LISTINGS = {
    "/v1/voices",
    "/v1/audio/voices",
    "/v1/audio/models",
    "/v1/models",
    "/speakers",
    "/speakers_list",
    "/languages",
    "/coqui/languages",
}
OPEN = {"/v1/health", "/v1/identity"}


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving() as served:
        yield served


@pytest.fixture
def client(server: Served) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def preflight(client: httpx.Client, path: str, method: str, headers: str, origin: str = SILLYTAVERN) -> httpx.Response:
    asked = {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
    return client.options(path, headers=asked)


def listed(value: str) -> set[str]:
    return {v.strip().lower() for v in value.split(",")}


# -- CORS -----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("origin", [SILLYTAVERN, "http://127.0.0.1:8000", "http://127.1.2.3", "http://[::1]:8000"])
def test_sillytaverns_preflights_pass_from_the_loopback_host_with_no_flags(client: httpx.Client, origin: str) -> None:
    for path, method, headers in PREFLIGHTS:
        r = preflight(client, path, method, headers, origin)
        assert r.status_code == 204, (path, r.status_code, r.text)
        assert r.headers["access-control-allow-origin"] == origin
        assert method.lower() in listed(r.headers["access-control-allow-methods"]), path
        assert listed(headers) <= listed(r.headers["access-control-allow-headers"]), path
        assert "origin" in listed(r.headers["vary"])
    # Then the calls themselves, each answered to that page.
    speakers = client.get("/speakers", headers={"Origin": origin})
    assert speakers.status_code == 200 and speakers.headers["access-control-allow-origin"] == origin
    browser = {"Origin": origin, "Content-Type": "application/json", "Cache-Control": "no-cache"}
    body = {"text": TEXT, "speaker_wav": "joe", "language": "en"}
    spoken = client.post("/tts_to_audio/", json=body, headers=browser)
    assert spoken.status_code == 200 and spoken.headers["access-control-allow-origin"] == origin
    assert np.array_equal(pcm_of_wav(spoken.content), reference(None, TEXT))
    speech = {"model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": "wav"}
    assert (
        client.post("/v1/audio/speech", json=speech, headers=browser).headers["access-control-allow-origin"] == origin
    )


def test_options_lists_the_methods_each_route_takes_and_404s_only_unknown_paths(client: httpx.Client) -> None:
    r = preflight(client, "/v1/jobs/abc", "DELETE", "")
    assert r.status_code == 204 and listed(r.headers["access-control-allow-methods"]) == {"get", "delete"}
    plain = client.options("/v1/synthesize")  # no browser: still the route's methods, never 405
    assert plain.status_code == 204 and plain.headers["allow"] == "POST"
    assert "access-control-allow-origin" not in plain.headers
    unknown = preflight(client, "/nowhere", "GET", "")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    # Chrome's Private Network Access asks before a public page reaches a private address.
    pna = client.options(
        "/speakers",
        headers={
            "Origin": SILLYTAVERN,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Private-Network": "true",
        },
    )
    assert pna.headers["access-control-allow-private-network"] == "true"


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://127.0.0.1.evil.example",
        "http://localhost.evil.example:8000",
        "null",
        "ftp://[::1]",
    ],
)
def test_a_page_from_another_origin_gets_a_json_403(client: httpx.Client, origin: str) -> None:
    r = preflight(client, "/tts_to_audio/", "POST", "content-type", origin)
    assert r.status_code == 403 and "access-control-allow-origin" not in r.headers
    assert r.json()["error"]["code"] == "origin_not_allowed" and f"--cors {origin}" in r.json()["error"]["message"]
    direct = client.post("/tts_to_audio/", json={"text": TEXT}, headers={"Origin": origin})
    assert direct.status_code == 403 and direct.json()["error"]["code"] == "origin_not_allowed"


def test_the_servers_own_pages_and_clients_without_origin_pass(server: Served, client: httpx.Client) -> None:
    from starlette.testclient import TestClient

    from speakcli.web.app import create_app

    assert client.get("/speakers").status_code == 200  # curl, SDKs, <audio src>: no Origin
    port = server.url.rsplit(":", 1)[1]
    own = client.get("/speakers", headers={"Host": f"localhost:{port}", "Origin": f"http://localhost:{port}"})
    assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
    # A server listening off loopback (no socket here: the app alone), its /docs page reached by its LAN name:
    # same origin, so not a CORS request.
    lan = TestClient(create_app(server.gateway), base_url="http://speak.lan:8020")
    own = lan.get("/speakers", headers={"Origin": "http://speak.lan:8020"})
    assert own.status_code == 200 and "access-control-allow-origin" not in own.headers


@pytest.mark.parametrize("name", ["evil.example", "127.0.0.1.evil.example", "localhost.evil.example", "[::2]"])
def test_a_loopback_server_answers_no_request_made_to_another_name(
    server: Served, client: httpx.Client, name: str
) -> None:
    # DNS rebinding: a page at http://evil.example:PORT points that name at 127.0.0.1; to the browser it is then
    # the server's own origin (its requests carry that Host, and that Origin or none).
    host = f"{name}:{server.url.rsplit(':', 1)[1]}"
    before = len(server.jobs)
    for headers in ({"Host": host}, {"Host": host, "Origin": f"http://{host}"}):
        listed = client.get("/v1/audio/voices", headers=headers)
        spoken = client.post("/v1/audio/speech", json={"input": TEXT, "voice": "alloy"}, headers=headers)
        for r in (listed, spoken):
            assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed", r.text
    assert len(server.jobs) == before  # nothing was spoken for it
    assert client.get("/v1/audio/voices", headers={"Host": "[::1]:8020"}).status_code == 200


def test_cors_flags_allow_the_origins_they_name_or_any() -> None:
    with serving(cors=["https://chat.example.org/"]) as served, httpx.Client(base_url=served.url, timeout=60) as c:
        ok = preflight(c, "/v1/audio/speech", "POST", "content-type", "https://chat.example.org")
        assert ok.status_code == 204 and ok.headers["access-control-allow-origin"] == "https://chat.example.org"
        assert preflight(c, "/v1/audio/speech", "POST", "content-type", "https://other.example.org").status_code == 403
        assert preflight(c, "/speakers", "GET", "authorization").status_code == 204  # loopback pages still may
    with serving(cors=["*"]) as served, httpx.Client(base_url=served.url, timeout=60) as c:
        r = c.get("/speakers", headers={"Origin": "https://anywhere.example"})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://anywhere.example"


# -- xtts-api-server's settings --------------------------------------------------------------------------------------


def test_set_tts_settings_as_sillytavern_sends_them_sets_that_dialects_defaults() -> None:
    with serving() as served, httpx.Client(base_url=served.url, timeout=60) as c:
        before = c.get("/get_tts_settings").json()
        assert before["speed"] == 1.0 and before["temperature"] == 0.75
        # SillyTavern reads its sliders with jQuery's .val(): numbers arrive as strings, in this one body.
        sent = {
            "temperature": "0.5",
            "speed": "1.5",
            "length_penalty": "1.0",
            "repetition_penalty": "5.0",
            "top_p": "0.85",
            "top_k": "50",
            "enable_text_splitting": True,
            "stream_chunk_size": "100",
        }
        headers = {"Content-Type": "application/json", "Cache-Control": "no-cache", "Origin": SILLYTAVERN}
        r = c.post("/set_tts_settings", json=sent, headers=headers)
        assert r.status_code == 200, r.text
        now = c.get("/get_tts_settings").json()
        assert now == {
            "speed": 1.5,
            "temperature": 0.5,
            "length_penalty": 1.0,
            "repetition_penalty": 5.0,
            "top_k": 50,
            "top_p": 0.85,
            "enable_text_splitting": True,
            "stream_chunk_size": 100,
        }
        body = {"text": TEXT, "speaker_wav": "joe", "language": "en"}
        whole = pcm_of_wav(c.post("/tts_to_audio/", json=body).content)
        assert served.requests[-1].speed == 1.5 and served.requests[-1].temperature == 0.5
        streamed = pcm_of_wav(c.get("/tts_stream/", params=body).content)
        assert served.requests[-1].speed == 1.5 and served.requests[-1].temperature == 0.5
        # The sampling settings go with each request to the engine's options (XTTS samples with them).
        options = served.gateway.options(served.requests[-1])
        assert (options.top_k, options.top_p, options.repetition_penalty) == (50, 0.85, 5.0)
        own = c.post("/v1/synthesize", json={"text": TEXT, "speed": 1.5, "format": "wav"}).content
        assert np.array_equal(whole, pcm_of_wav(own)) and np.array_equal(streamed, whole)
        assert len(whole) < len(reference(None, TEXT)) / 1.2  # faster: shorter
        # The other dialects keep their own defaults.
        openai = c.post("/v1/audio/speech", json={"input": TEXT, "voice": "alloy", "response_format": "wav"})
        assert np.array_equal(pcm_of_wav(openai.content), reference(None, TEXT))
        assert served.requests[-1].speed == 1.0 and served.requests[-1].temperature is None
        assert served.gateway.options(served.requests[-1]).repetition_penalty is None  # coqui's default


@pytest.mark.parametrize(
    "bad",
    [{"speed": "9"}, {"speed": "fast"}, {"temperature": "0"}, {"top_k": 0}, {"top_p": 2}, {"stream_chunk_size": 5000}],
)
def test_bad_settings_are_a_400_and_change_nothing(client: httpx.Client, bad: dict[str, Any]) -> None:
    before = client.get("/get_tts_settings").json()
    r = client.post("/set_tts_settings", json={"speed": 1.25, **bad})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input", r.text
    assert next(iter(bad)) in r.json()["error"]["message"]
    assert client.get("/get_tts_settings").json() == before


# -- the API key, listings and links --------------------------------------------------------------------------------


def _path(template: str) -> str:
    return template.replace("{name}", "joe").replace("{job_id}", "nojob").replace("{item_id}", "a")


def test_listings_answer_without_the_key_and_every_other_route_needs_it() -> None:
    with serving(api_key="s3cret") as served, httpx.Client(base_url=served.url, timeout=60) as c:
        routes = [(r.path, m) for router in ROUTERS for r in router.routes for m in getattr(r, "methods", ())]
        assert {p for p, _ in routes} >= LISTINGS | OPEN
        for path, method in routes:
            r = c.request(method, _path(path))
            if path in LISTINGS:
                assert r.status_code == 200, (path, r.text)
            elif path not in OPEN:
                assert r.status_code == 401, (method, path, r.status_code)
        # Open WebUI's own calls: no Authorization header, and it reads these shapes.
        voices = {v["id"]: v["name"] for v in c.get("/v1/audio/voices").json()["voices"]}
        assert voices["joe"] == "joe"
        assert {"id": "tts-1"} in c.get("/v1/audio/models").json()["models"]
        assert c.get("/v1/audio/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    with serving(api_key="s3cret", private_lists=True) as served, httpx.Client(base_url=served.url, timeout=60) as c:
        for path in sorted(LISTINGS):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, path


def test_audio_links_take_the_key_in_their_query_and_nothing_else_does() -> None:
    with serving(api_key="s3cret") as served, httpx.Client(base_url=served.url, timeout=60) as c:
        # SillyTavern with its Extras API key set to the server's: /speakers gets it, and each preview URL then
        # works as an <audio src> (a plain GET, no header).
        keyed = c.get("/speakers", headers={"Authorization": "Bearer s3cret"}).json()
        assert keyed[0]["preview_url"].endswith("/v1/voices/joe/sample?api_key=s3cret")
        preview = httpx.get(keyed[0]["preview_url"], timeout=60)
        assert preview.status_code == 200 and preview.content[:4] == b"RIFF"
        open_list = c.get("/speakers").json()  # asked without the key: no key in its links
        assert "api_key" not in open_list[0]["preview_url"]
        assert httpx.get(open_list[0]["preview_url"], timeout=60).status_code == 401
        query = {"text": TEXT, "speaker_wav": "joe", "language": "en"}
        streamed = c.get("/tts_stream/", params={**query, "api_key": "s3cret"})
        assert streamed.status_code == 200 and np.array_equal(pcm_of_wav(streamed.content), reference(None, TEXT))
        for wrong in ({}, {"api_key": "nope"}, {"api_key": ""}):
            r = c.get("/tts_stream/", params={**query, **wrong})
            assert r.status_code == 401 and "?api_key=KEY" in r.json()["error"]["message"]
        # Synthesis, cloning and jobs take the key only in the header.
        for method, path in [
            ("POST", "/tts_to_audio/"),
            ("POST", "/v1/synthesize"),
            ("POST", "/v1/audio/speech"),
            ("POST", "/v1/clone-voice"),
            ("GET", "/v1/jobs/nojob"),
            ("POST", "/set_tts_settings"),
        ]:
            r = c.request(method, path, params={"api_key": "s3cret"}, json={"text": TEXT})
            assert r.status_code == 401, (method, path)


def test_the_key_in_a_query_never_reaches_a_route() -> None:
    seen: list[str] = []

    async def echo(request: Request) -> dict[str, str]:
        seen.append(str(request.url))
        return {}

    with serving(api_key="s3cret") as served, httpx.Client(base_url=served.url, timeout=60) as c:
        assert served.server is not None
        served.server.app.add_api_route("/echo", echo)
        r = c.get(
            "/echo", params={"a": "1", "api_key": "s3cret", "b": "x y"}, headers={"Authorization": "Bearer s3cret"}
        )
        assert r.status_code == 200
        assert served.server._server.config.access_log is False  # uvicorn's log of every URL: off
    assert seen and "s3cret" not in seen[0] and seen[0].endswith("/echo?a=1&b=x+y")


# -- whole WAV ---------------------------------------------------------------------------------------------------------


def riff_sizes(data: bytes) -> tuple[int, int]:
    """The RIFF size and the data chunk's size of a WAV speakcli wrote (its data chunk follows a 16-byte fmt)."""
    riff = struct.unpack_from("<I", data, 4)[0]
    assert data[36:40] == b"data"
    return riff, struct.unpack_from("<I", data, 40)[0]


def test_whole_wav_answers_carry_their_true_length(server: Served, client: httpx.Client) -> None:
    from openai import AsyncOpenAI, OpenAI

    sdk = OpenAI(base_url=f"{server.url}/v1", api_key="unused")
    expected = reference(None, TEXT)
    whole = sdk.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav").content
    sillytavern = client.post("/tts_to_audio/", json={"text": TEXT, "speaker_wav": "joe", "language": "en"}).content

    async def with_async_sdk() -> bytes:
        async with AsyncOpenAI(base_url=f"{server.url}/v1", api_key="unused") as aclient:
            speech = await aclient.audio.speech.create(model="tts-1", voice="alloy", input=TEXT, response_format="wav")
            return speech.content

    for data in (whole, sillytavern, asyncio.run(with_async_sdk())):
        with wave.open(io.BytesIO(data)) as w:
            assert w.getnframes() == len(expected) and w.getframerate() == 22050
        assert riff_sizes(data) == (len(data) - 8, 2 * len(expected))
    # Asked for as a stream, it streams, with the open-ended header a stream must have.
    body = {"input": TEXT, "voice": "alloy", "response_format": "wav", "stream_format": "audio"}
    with client.stream("POST", "/v1/audio/speech", json=body) as r:
        streamed = b"".join(r.iter_bytes())
    assert "content-length" not in r.headers and riff_sizes(streamed) == (0xFFFFFFFF, 0xFFFFFFFF)
    assert np.array_equal(pcm_of_wav(streamed), expected)
