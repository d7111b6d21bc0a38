"""The Python API: `import speakcli` stays light; `speakcli.speak` and `speakcli.Service` do what their docs say."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speakcli
from speakcli.errors import ModelError, OutputError, UsageError

HEAVY = ("numpy", "torch", "TTS", "piper", "onnxruntime", "typer", "rich", "sounddevice")


def test_import_speakcli_loads_nothing_heavy_and_the_api_loads_no_model_library() -> None:
    probe = (
        "import json, sys, speakcli\n"
        f"heavy = {HEAVY!r}\n"
        "before = [m for m in heavy if m in sys.modules]\n"
        "speakcli.speak, speakcli.Service, speakcli.Speech\n"
        "after = [m for m in heavy if m in sys.modules]\n"
        "print(json.dumps([before, after, sorted(speakcli.__all__)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    before, after, exported = json.loads(result.stdout)
    assert before == []
    assert after == ["numpy"]  # the API's types need numpy; engines load only when a service speaks
    assert exported == ["Service", "Speech", "__version__", "speak"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        speakcli.nope  # type: ignore[attr-defined]  # noqa: B018


@pytest.mark.slow
def test_speak_returns_the_audio_and_writes_the_file_it_is_given(tmp_path: Path) -> None:
    audio, rate = speakcli.speak("Hello from Python.", engine="piper")
    assert rate == 22050 and audio.dtype == np.float32 and 0.8 < len(audio) / rate < 4
    out = tmp_path / "hello.mp3"
    speech = speakcli.speak("Hello from Python.", out=out, engine="piper")
    decoded, got = sf.read(str(out), dtype="float32")
    assert got == 22050 and abs(len(decoded) - len(speech.audio)) / got < 0.2  # MP3 pads its ends a little
    out.write_bytes(b"my work")
    with pytest.raises(OutputError, match="already exists"):
        speakcli.speak("Hello.", out=out, engine="piper")
    assert out.read_bytes() == b"my work"
    speakcli.speak("Hello.", out=out, engine="piper", force=True)
    assert sf.info(str(out)).duration > 0.3


@pytest.mark.slow
@pytest.mark.audio
def test_speak_plays_when_asked() -> None:
    from test_playback import Capture

    with Capture() as cap:
        audio, rate = speakcli.speak("Hello from the speakers.", engine="piper", play=True)
        assert cap.heard.wait(10)  # the null sink's monitor heard it
    assert len(audio) / rate > 0.8


@pytest.mark.slow
def test_service_yields_chunks_as_made_lists_voices_and_raises_before_any_audio() -> None:
    with speakcli.Service(engine="piper", speed=1.0) as tts:
        assert tts.engine == "piper" and tts.sample_rate == 22050
        chunks = tts.speak("One sentence here. Another one there.")
        first = next(chunks)
        assert first.dtype == np.float32 and len(first) > 0
        rest = list(chunks)
        assert len(rest) >= 2  # a chunk per sentence at least, with the pause between
        whole = tts.audio("One sentence here. Another one there.")
        assert abs(len(whole.audio) - len(first) - sum(map(len, rest))) < 0.3 * whole.sample_rate
        slow = tts.audio("One sentence here.", speed=0.5)
        assert len(slow.audio) > 1.6 * len(tts.audio("One sentence here.").audio)
        ssml = tts.audio('<speak>Hi <break time="1s"/> there.</speak>')
        assert len(ssml.audio) / ssml.sample_rate > 1.4
        with pytest.raises(UsageError, match="not supported by the piper engine"):
            tts.speak("Hallo.", language="de")
        assert [v.name for v in tts.voices()] == ["joe"]
        with pytest.raises(ModelError, match="cloning needs an XTTS model"):
            tts.clone(["ref.wav"], "me")
    assert not tts.core.worker.alive


def test_service_settings_come_from_the_environment_when_not_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEAKCLI_ENGINE", "piper")
    monkeypatch.setenv("SPEAKCLI_SPEED", "1.5")
    with speakcli.Service() as tts:
        assert tts.engine == "piper" and tts.core.settings.speed == 1.5
    with speakcli.Service(speed=2.0) as tts:
        assert tts.core.settings.speed == 2.0  # an argument wins, as a flag does
    with pytest.raises(UsageError, match=r"speed 9\.0 is out of range"):
        speakcli.Service(speed=9)


@pytest.mark.slow
@pytest.mark.xtts
def test_service_clones_a_voice_and_speaks_with_it(tiny_xtts_dir: Path, tone_wav: object, voices_dir: Path) -> None:
    ref = tone_wav("ref.wav", seconds=3.0)  # type: ignore[operator]
    with speakcli.Service(model_dir=tiny_xtts_dir, device="cpu") as tts:
        assert tts.engine == "xtts"
        result = tts.clone([ref], "me", description="a test voice")
        assert result.voice.name == "me" and result.latents == "computed" and result.saved_in == voices_dir
        listed = {v.name: v for v in tts.voices()}
        assert listed["me"].cached is True and listed["me"].description == "a test voice"
        audio, rate = tts.audio("Cloned.", voice="me")
        assert rate == 24000 and len(audio) > 0 and np.all(np.isfinite(audio))
