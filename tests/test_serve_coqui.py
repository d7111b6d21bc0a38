"""coqui's xtts-streaming-server API as its clients call it: pipecat's XTTS service replayed (aiohttp, its requests
and reading), coqui's own demo's /clone_speaker and /tts; on the tiny XTTS and on Piper. Latents a client sends
are checked before anything is queued, and never unpickled."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from serve_helpers import Served, serving, write_clip
from speakcli.engines.base import Voice

pytestmark = pytest.mark.slow

TEXT = "Hello from a pipecat bot. It speaks through speakcli."


async def pipecat_xtts(base_url: str, voice: str, text: str, language: str = "en") -> tuple[list[int], bytes, Any]:
    """What pipecat's XTTSService does (services/xtts/tts.py): `start` fetches the studio speakers once, `run_tts`
    posts the chosen one's latents to /tts_stream and reads the body in chunks. Returns (statuses, PCM, speakers)."""
    import aiohttp

    statuses = []
    async with aiohttp.ClientSession() as session:
        async with session.get(base_url + "/studio_speakers") as r:
            statuses.append(r.status)
            if r.status != 200:
                return statuses, b"", await r.json()
            studio_speakers = await r.json()
        embeddings = studio_speakers[voice]
        payload = {
            "text": text.replace(".", "").replace("*", ""),
            "language": language,
            "speaker_embedding": embeddings["speaker_embedding"],
            "gpt_cond_latent": embeddings["gpt_cond_latent"],
            "add_wav_header": False,
            "stream_chunk_size": 20,
        }
        buffer = bytearray()
        async with session.post(base_url + "/tts_stream", json=payload) as r:
            statuses.append(r.status)
            async for chunk in r.content.iter_chunked(4096):
                buffer.extend(chunk)
    return statuses, bytes(buffer), studio_speakers


def pcm_seconds(pcm: bytes) -> float:
    assert len(pcm) % 2 == 0 and pcm[:4] != b"RIFF"  # bare 16-bit samples, as add_wav_header false asks
    samples = np.frombuffer(pcm, "<i2").astype(np.float32) / 32767
    assert float(np.sqrt(np.mean(samples**2))) > 0.001, "silence"
    return len(samples) / 24000  # pipecat takes it as 24 kHz


def latents_json(rows: int = 32, width: int = 64, dim: int = 512) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "gpt_cond_latent": rng.normal(size=(rows, width)).astype(np.float16).tolist(),
        "speaker_embedding": rng.normal(size=dim).astype(np.float16).tolist(),
    }


# -- on the tiny XTTS -------------------------------------------------------------------------------------------------


@pytest.fixture
def xtts_server(tiny_xtts_dir: Path, voices_dir: Path, tmp_path: Path) -> Iterator[Served]:
    """The tiny XTTS with one built-in speaker (speakers_xtts.pth, as real v2 folders ship)."""
    from speakcli.testing.tiny_xtts import add_builtin_speaker

    model = tmp_path / "model"
    shutil.copytree(tiny_xtts_dir, model)
    add_builtin_speaker(model, "Claribel Dervla", write_clip(tmp_path / "studio.wav"))
    with serving({"engine": "xtts", "model_dir": model, "voices_dir": voices_dir}) as served:
        yield served


@pytest.mark.xtts
def test_pipecat_speaks_with_studio_speakers_and_saved_voices(xtts_server: Served, tmp_path: Path) -> None:
    url = xtts_server.url
    clip = write_clip(tmp_path / "me.wav")
    with httpx.Client(base_url=url, timeout=120) as client:  # a voice saved as speakcli saves them
        saved = client.post("/v1/clone-voice", data={"name": "me"}, files=[("files", ("me.wav", clip.read_bytes()))])
        assert saved.status_code == 201, saved.text
        said = TEXT.replace(".", "")  # as pipecat sends it
        alone = client.post("/v1/synthesize", json={"text": said, "voice": "me", "format": "wav"})
    statuses, pcm, speakers = asyncio.run(pipecat_xtts(url, "Claribel Dervla", TEXT))
    assert statuses == [200, 200]
    assert sorted(speakers) == ["Claribel Dervla", "me"]
    for entry in speakers.values():  # coqui's shapes: [32][width] and [512], squeezed
        assert len(entry["gpt_cond_latent"]) == 32 and len(entry["speaker_embedding"]) == 512
    # The saved voice's latents are its own (rounded to float16, as coqui's server sends them).
    own = xtts_server.service.speaker_latents(xtts_server.service.library.find("me"))  # type: ignore[arg-type]
    sent = np.asarray(speakers["me"]["gpt_cond_latent"], np.float32)
    assert np.array_equal(sent, own.gpt_cond_latent[0].astype(np.float16).astype(np.float32))
    # The tiny model always makes the same number of codes: the same length as the same text by name, at 24 kHz.
    audio, rate = sf.read(io.BytesIO(alone.content), dtype="float32")
    assert rate == 24000 and pcm_seconds(pcm) == pytest.approx(len(audio) / rate, abs=0.05)
    _, saved_pcm, _ = asyncio.run(pipecat_xtts(url, "me", TEXT))
    assert pcm_seconds(saved_pcm) == pytest.approx(len(audio) / rate, abs=0.05)


@pytest.mark.xtts
def test_clone_speaker_then_tts_as_coquis_demo_calls_them(xtts_server: Served, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "reference.wav")
    with httpx.Client(base_url=xtts_server.url + "/coqui", timeout=120) as client:
        # demo.py: files={"wav_file": ("reference.wav", open(ref, "rb"))}
        cloned = client.post("/clone_speaker", files={"wav_file": ("reference.wav", clip.open("rb"))})
        assert cloned.status_code == 200, cloned.text
        speaker = cloned.json()
        languages = client.get("/languages").json()
        spoken = client.post("/tts", json={"text": TEXT, "language": "en", **speaker})
        streamed = client.post("/tts_stream", json={**speaker, "text": TEXT, "language": "zh-cn"})
        by_name = client.post("/tts", json={"text": TEXT, "language": "en", "voice": "Claribel Dervla"})
    # The clip's own latents, computed as a saved voice's would be; nothing saved.
    own = xtts_server.service.speaker_latents(Voice("x", clips=(clip.resolve(),)))
    assert np.array_equal(
        np.asarray(speaker["speaker_embedding"], np.float16), own.speaker_embedding.reshape(-1).astype(np.float16)
    )
    assert [e.name for e in xtts_server.service.library.all()] == ["joe"]  # the bundled voice alone: none saved
    assert "en" in languages and "zh-cn" in languages  # coqui's list of the config's codes
    for reply in (spoken, by_name):  # a JSON string: the WAV in base64
        assert reply.status_code == 200, reply.text
        audio, rate = sf.read(io.BytesIO(base64.b64decode(reply.json())), dtype="float32")
        assert rate == 24000 and len(audio) / rate > 0.5 and float(np.sqrt(np.mean(audio**2))) > 0.001
    assert streamed.status_code == 200 and streamed.content[:4] == b"RIFF"  # add_wav_header defaults to true
    assert sf.read(io.BytesIO(streamed.content))[1] == 24000


@pytest.mark.xtts
@pytest.mark.parametrize(
    ("change", "status", "words"),
    [
        ({"gpt_cond_latent": latents_json(rows=31)["gpt_cond_latent"]}, 400, "this model takes 32 x 64"),
        ({"speaker_embedding": latents_json(dim=256)["speaker_embedding"]}, 400, "this model takes 512"),
        ({"gpt_cond_latent": [["0.5"] * 64] * 32}, 400, "numbers only"),
        ({"speaker_embedding": [True] * 512}, 400, "numbers only"),
        ({"gpt_cond_latent": [[0.5] * 64] * 31 + [[0.5] * 63]}, 400, "same length"),
        ({"gpt_cond_latent": [[0.5] * 64] * 65}, 413, "at most 64"),
        ({"speaker_embedding": [0.5] * 4096}, 413, "at most 2048"),
        ({"speaker_embedding": [1e6] * 512}, 400, "finite numbers of magnitude"),
        ({"speaker_embedding": None}, 400, "speaker_embedding must be"),
        ({"gpt_cond_latent": base64.b64encode(pickle.dumps(np.zeros((32, 64)))).decode()}, 400, "list of rows"),
        ({"voice": "Claribel Dervla"}, 400, "not both"),
        ({"stream_chunk_size": "fast"}, 400, "stream_chunk_size"),
    ],
)
def test_latents_are_checked_before_anything_is_queued(
    xtts_server: Served, change: dict[str, Any], status: int, words: str
) -> None:
    body = {"text": TEXT, "language": "en", **latents_json(), **change}
    reply = httpx.post(xtts_server.url + "/tts_stream", json=body, timeout=60)
    assert reply.status_code == status, reply.text
    assert words in reply.json()["error"]["message"]
    assert xtts_server.jobs == []


class _Tripwire:
    """Unpickling this writes a file: proof, if it exists, that a body was unpickled."""

    path = ""

    def __reduce__(self) -> Any:
        return (Path.write_text, (Path(self.path), "unpickled"))


def test_non_finite_numbers_and_pickles_are_refused(tmp_path: Path) -> None:
    with serving() as served, httpx.Client(base_url=served.url, timeout=60) as client:
        latents = latents_json()
        latents["speaker_embedding"][3] = float("nan")
        nan = client.post(
            "/tts", content=json.dumps({"text": TEXT, **latents}), headers={"content-type": "application/json"}
        )
        tripwire = _Tripwire()
        tripwire.path = str(tmp_path / "unpickled")
        pickled = client.post(
            "/tts", content=pickle.dumps(tripwire), headers={"content-type": "application/octet-stream"}
        )
        deep = '{"text": "Hi.", "gpt_cond_latent": ' + "[" * 5000 + "]" * 5000 + "}"  # past the parser's recursion
        nested = client.post("/tts", content=deep, headers={"content-type": "application/json"})
    assert nan.status_code == 400 and "finite" in nan.json()["error"]["message"]
    assert nested.status_code == 400 and "nested too deeply" in nested.json()["error"]["message"], nested.text
    assert pickled.status_code == 400 and "not JSON" in pickled.json()["error"]["message"]
    assert not (tmp_path / "unpickled").exists()
    assert served.jobs == []


# -- on Piper ---------------------------------------------------------------------------------------------------------


def test_on_piper_the_latent_routes_say_they_need_xtts_and_a_voice_name_works() -> None:
    with serving() as served:
        statuses, _, error = asyncio.run(pipecat_xtts(served.url, "joe", TEXT))
        with httpx.Client(base_url=served.url, timeout=60) as client:
            speak = client.post("/tts_stream", json={"text": TEXT, "language": "en", **latents_json(width=1024)})
            clone = client.post("/clone_speaker", files={"wav_file": ("reference.wav", b"RIFF....")})
            by_name = client.post(
                "/tts_stream", json={"text": TEXT, "language": "en", "voice": "joe", "add_wav_header": False}
            )
            openai = client.post(
                "/v1/audio/speech", json={"model": "tts-1", "input": TEXT, "voice": "joe", "response_format": "pcm"}
            )
    assert statuses == [400]  # pipecat logs it: "Error getting studio speakers (status: 400, error: ...)"
    for reply in (error, speak.json(), clone.json()):
        assert reply["error"]["code"] == "cannot_clone", reply
        assert "XTTS" in reply["error"]["message"]
    assert [speak.status_code, clone.status_code] == [400, 400]
    # A voice by name streams as coqui's server streams: bare 24 kHz 16-bit PCM, as OpenAI's pcm is.
    assert by_name.status_code == 200 and by_name.content == openai.content
    pcm_seconds(by_name.content)
