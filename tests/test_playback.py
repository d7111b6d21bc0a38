"""Real playback through sounddevice into a PulseAudio null sink; recording its monitor proves audio went out."""

from __future__ import annotations

import os
import subprocess
import threading
import time

import numpy as np
import pytest

from helpers import run_cli
from speakcli.audio.playback import Player, output_devices
from speakcli.testing import tone

pytestmark = pytest.mark.audio
RATE = 22050
SINK_SERVER = "unix:/tmp/speakcli-pulse/native"


class Capture:
    """Records the default input (the null sink's monitor) until the played sound has come and gone."""

    def __init__(self) -> None:
        import sounddevice as sd

        self.frames: list[np.ndarray] = []
        self.heard = threading.Event()
        self.quiet_after = threading.Event()
        self._stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", callback=self._cb)

    def _cb(self, indata: np.ndarray, frames: int, t: object, status: object) -> None:
        self.frames.append(indata[:, 0].copy())
        loud = float(np.sqrt(np.mean(indata**2))) > 0.05
        if loud:
            self.heard.set()
        elif self.heard.is_set():
            self.quiet_after.set()

    def __enter__(self) -> Capture:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.stop()
        self._stream.close()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.frames) if self.frames else np.zeros(0, np.float32)


def test_the_default_output_is_pulseaudio_routed_to_the_null_sink() -> None:
    if os.environ.get("PULSE_SERVER") != SINK_SERVER:
        pytest.skip("not the null sink of scripts/audio-sink (a real sound card is in use)")
    devices = output_devices()
    default = [d["name"] for d in devices if d["default"]]
    assert default in (["default"], ["pulse"]), devices
    sink = subprocess.run(["pactl", "get-default-sink"], capture_output=True, text=True, check=True).stdout.strip()
    assert sink == "speakcli_null"


def test_playing_a_tone_takes_its_length_and_reaches_the_sink() -> None:
    clip = tone(1.0, RATE, amplitude=0.3)
    with Capture() as cap:
        start = time.monotonic()
        with Player(RATE) as player:
            for i in range(0, len(clip), 2048):  # streamed, as synthesis yields it
                player.write(clip[i : i + 2048])
        elapsed = time.monotonic() - start
        assert cap.quiet_after.wait(10)
    assert 0.9 <= elapsed < 6.0
    rec = cap.audio()
    windows = rec[: len(rec) // 1024 * 1024].reshape(-1, 1024)
    rms = np.sqrt(np.mean(windows**2, axis=1))
    loud_seconds = int(np.sum(rms > 0.1)) * 1024 / RATE
    assert 0.7 < loud_seconds < 1.3
    assert 0.17 < float(rms.max()) < 0.25  # 0.3 amplitude sine: RMS 0.21
    spectrum = np.abs(np.fft.rfft(rec * np.hanning(len(rec))))
    freqs = np.fft.rfftfreq(len(rec), 1 / RATE)
    assert abs(freqs[np.argmax(spectrum)] - 440) < 5


def test_say_plays_speech_through_the_default_device() -> None:
    with Capture() as cap:
        start = time.monotonic()
        result = run_cli("say", "Hello from the speakers.", "--engine", "piper")
        elapsed = time.monotonic() - start
        assert cap.heard.wait(10)
    assert result.returncode == 0, result.stderr
    assert elapsed > 1.0  # it waited for the audio to play out


def test_output_device_by_name() -> None:
    name = next(d["name"] for d in output_devices() if d["default"])
    result = run_cli("say", "Pick a device.", "--engine", "piper", "--output-device", name)
    assert result.returncode == 0, result.stderr
