"""The bundled Piper voice, for real: deterministic with zero noise, sensible durations, every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import read, run_cli
from speakcli.engines.base import SynthesisOptions
from speakcli.engines.piper import PiperEngine
from speakcli.errors import Hint, VoiceError
from speakcli.service import utterance
from speakcli.voices import VoiceLibrary

SENTENCE = "The quick brown fox jumps over the lazy dog while the band plays on."


@pytest.fixture(scope="module")
def piper() -> PiperEngine:
    engine = PiperEngine(noise_scale=0.0, noise_w_scale=0.0)
    engine.load()
    return engine


def _speak(engine: PiperEngine, text: str, **opts: float) -> np.ndarray:
    return np.concatenate(list(utterance(engine, text, None, SynthesisOptions(**opts))))


def test_zero_noise_is_deterministic(piper: PiperEngine) -> None:
    assert np.array_equal(_speak(piper, SENTENCE), _speak(piper, SENTENCE))


def test_duration_fits_the_text(piper: PiperEngine) -> None:
    audio = _speak(piper, SENTENCE)
    seconds = len(audio) / piper.sample_rate
    words = len(SENTENCE.split())
    # Natural speech runs about 2-4 words a second.
    assert words / 4.5 < seconds < words / 1.5
    assert np.sqrt(np.mean(audio**2)) > 0.02
    assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= 1.0


def test_speed_changes_duration(piper: PiperEngine) -> None:
    normal = len(_speak(piper, SENTENCE, speed=1.0))
    fast = len(_speak(piper, SENTENCE, speed=2.0))
    assert 0.4 < fast / normal < 0.65


def test_pause_adds_silence_between_sentences(piper: PiperEngine) -> None:
    text = "First sentence here. Second sentence here."
    no_pause = len(_speak(piper, text, pause=0.0))
    with_pause = len(_speak(piper, text, pause=0.5))
    assert with_pause - no_pause == int(0.5 * piper.sample_rate)


def test_piper_refuses_cloning_with_a_pointer_to_xtts(piper: PiperEngine, tone_wav) -> None:  # type: ignore[no-untyped-def]
    voice = VoiceLibrary(Path("voices")).resolve(str(tone_wav()))
    with pytest.raises(VoiceError, match="cannot clone") as caught:
        piper.check_voice(voice)
    assert caught.value.hint == Hint.ENGINE_XTTS


@pytest.mark.slow
@pytest.mark.parametrize(("ext", "fmt"), [("wav", "WAV"), ("flac", "FLAC"), ("ogg", "OGG")])
def test_say_writes_each_format(tmp_path: Path, ext: str, fmt: str) -> None:
    out = tmp_path / f"hello.{ext}"
    result = run_cli("say", "Hello from speakcli.", "--engine", "piper", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert sf.info(out).format == fmt
    audio, rate = read(out)
    assert rate == 22050
    assert 0.5 < len(audio) / rate < 4
    assert np.sqrt(np.mean(audio**2)) > 0.02
