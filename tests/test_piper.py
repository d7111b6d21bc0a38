"""The bundled Piper voice, for real: deterministic with zero noise, sensible durations, every format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from helpers import read, run_cli
from speakcli.engines.base import SynthesisOptions
from speakcli.engines.piper import PiperEngine, phoneme_limit, phoneme_runs
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


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(["a", "ˈ", "ɛ", " ", ",", ";", "."]), max_size=400), st.integers(2, 60))
def test_phoneme_runs_keep_every_phoneme_once_in_order_within_the_limit(phonemes: list[str], limit: int) -> None:
    runs = phoneme_runs(phonemes, limit)
    assert [p for run in runs for p in run] == phonemes
    assert all(0 < len(run) <= limit for run in runs)


def test_phoneme_runs_cut_after_a_clause_mark_else_after_a_space() -> None:
    clause = list("ab, cd ef gh ij")
    assert phoneme_runs(clause, 12) == [list("ab, cd ef "), list("gh ij")]
    assert phoneme_runs(list("ab cd, ef gh ij"), 12) == [list("ab cd, "), list("ef gh ij")]
    assert phoneme_runs(list("abcdefghij"), 4) == [list("abcd"), list("efgh"), list("ij")]


@pytest.fixture(scope="module")
def piper_voice(piper: PiperEngine) -> Any:
    """The same voice loaded by piper itself, as a reference."""
    from piper import PiperVoice

    return PiperVoice.load(piper.model_path, config_path=piper.config_path)


def test_ordinary_english_sounds_exactly_as_piper_makes_it(piper: PiperEngine, piper_voice: Any) -> None:
    """Bounded model calls change nothing for sentences under the limit: the same samples as piper's own call."""
    from piper import SynthesisConfig

    text = (
        "In the beginning, the universe was created; this has made a lot of people very angry and been widely "
        "regarded as a bad move. Numbers like 1,234 are read, too!"
    )
    want = [
        c.audio_float_array for c in piper_voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0))
    ]
    got = list(piper.synthesize(text, None, SynthesisOptions()))
    assert len(got) == len(want) == 2
    assert all(np.array_equal(g, w) for g, w in zip(got, want, strict=True))


def test_a_sentence_past_the_limit_is_made_in_several_calls(piper: PiperEngine, piper_voice: Any) -> None:
    # A hash has no spaces to cut at and espeak spells it: ~330 phonemes in one sentence.
    text = "0123456789abcdef" * 5
    (sentence,) = piper_voice.phonemize(text)
    assert len(sentence) > phoneme_limit(1.0)
    chunks = list(piper.synthesize(text, None, SynthesisOptions()))
    assert len(chunks) == len(phoneme_runs(sentence, phoneme_limit(1.0))) >= 2
    assert phoneme_limit(0.5) < phoneme_limit(1.0) < phoneme_limit(2.0)
