"""Speed is a rate, as OpenAI means it: at speed s the audio is 1/s as long as at 1.0, the pauses between
sentences included, on Piper and XTTS, through the OpenAI route and `say`; checked by decoding what was made."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf

from serve_helpers import serving
from speakcli.audio.stretch import fit_length, stretch
from speakcli.cli import main

THREE = "The first sentence is here. A second one follows it. And the third ends the text."
SPEEDS = (0.5, 2.0, 4.0)


def seconds(data: bytes | Path) -> float:
    """The length of decoded audio, after checking there is sound in it."""
    audio, rate = sf.read(io.BytesIO(data) if isinstance(data, bytes) else str(data), dtype="float32")
    assert float(np.sqrt(np.mean(audio**2))) > 0.005, "silence"
    return len(audio) / rate


def assert_rates(durations: dict[float, float]) -> None:
    base = durations[1.0]
    for speed in SPEEDS:
        # The duration at 1.0 divided by the speed, within 5%.
        assert durations[speed] * speed == pytest.approx(base, rel=0.05), (speed, durations)


def engine_flags(name: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if name == "piper":
        return {"engine": "piper"}
    return {"engine": "xtts", "model_dir": request.getfixturevalue("tiny_xtts_dir"), "device": "cpu"}


ENGINES = [pytest.param("piper"), pytest.param("xtts", marks=pytest.mark.xtts)]


# -- the signal tools ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("factor", [0.25, 0.5, 2.0])
def test_stretch_gives_the_exact_length_at_the_same_pitch(factor: float) -> None:
    rate = 22050
    tone = (0.5 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    length = round(len(tone) * factor)
    out = stretch(tone, length, rate)
    assert len(out) == length
    spectrum = np.abs(np.fft.rfft(out * np.hanning(len(out))))
    freqs = np.fft.rfftfreq(len(out), 1 / rate)
    assert freqs[int(np.argmax(spectrum))] == pytest.approx(220, abs=3)  # resampling would move it to 220 / factor
    # One clean tone at its level: no seams or clicks spreading energy away from it.
    assert float(np.sum(spectrum[(freqs > 200) & (freqs < 240)] ** 2) / np.sum(spectrum**2)) > 0.99
    assert float(np.sqrt(np.mean(out[1000:-1000] ** 2))) == pytest.approx(0.5 / np.sqrt(2), rel=0.02)


def test_fit_length_cuts_or_pads_with_silence() -> None:
    audio = np.ones(10, np.float32)
    assert np.array_equal(fit_length(audio, 4), np.ones(4))
    assert np.array_equal(fit_length(audio, 12), np.r_[np.ones(10), np.zeros(2)])


# -- every engine, every route ---------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_the_openai_route_speaks_at_speed_as_a_rate(engine: str, request: pytest.FixtureRequest) -> None:
    durations = {}
    with serving(engine_flags(engine, request)) as served, httpx.Client(base_url=served.url, timeout=120) as client:
        for speed in (1.0, *SPEEDS):
            body = {"model": "tts-1", "input": THREE, "voice": "alloy", "response_format": "wav", "speed": speed}
            reply = client.post("/v1/audio/speech", json=body)
            assert reply.status_code == 200, reply.text
            durations[speed] = seconds(reply.content)
    assert_rates(durations)


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_say_speaks_at_speed_as_a_rate(engine: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    flags = engine_flags(engine, request)
    args = ["--engine", flags["engine"], *(["--model-dir", str(flags["model_dir"])] if "model_dir" in flags else [])]
    durations = {}
    for speed in (1.0, *SPEEDS):
        out = tmp_path / f"at-{speed}.wav"
        assert main(["say", THREE, *args, "--speed", str(speed), "--no-server", "-q", "-o", str(out)]) == 0
        durations[speed] = seconds(out)
    assert_rates(durations)
