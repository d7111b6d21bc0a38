"""Real playback through sounddevice into a PulseAudio null sink; recording its monitor proves audio went out."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


SECOND_DEVICE = "speakcli_second"  # the ALSA name PortAudio lists for the second sink


@pytest.fixture
def second_sink(isolated_env: Path) -> Iterator[str]:
    """A second PulseAudio null sink, not the default, that PortAudio lists as the device `speakcli_second`
    (through an ALSA pulse device in the test's ~/.asoundrc); unloaded afterwards. Yields the sink's name."""
    if not os.environ.get("PULSE_SERVER") or not (shutil.which("pactl") and shutil.which("parec")):
        pytest.skip("needs a PulseAudio server and its pactl and parec (pulseaudio-utils)")
    sink = f"speakcli_second_{secrets.token_hex(4)}"  # the sound server may be shared: a name of its own
    loaded = subprocess.run(
        ["pactl", "load-module", "module-null-sink", f"sink_name={sink}"], capture_output=True, text=True
    )
    if loaded.returncode != 0:
        pytest.skip(f"cannot load a second null sink: {loaded.stderr.strip()}")
    (isolated_env / ".asoundrc").write_text(f'pcm.{SECOND_DEVICE} {{\n  type pulse\n  device "{sink}"\n}}\n')
    try:
        yield sink
    finally:
        subprocess.run(["pactl", "unload-module", loaded.stdout.strip()], capture_output=True)


class SinkRecording:
    """Records a sink's monitor with parec (16-bit mono at RATE), read by a thread of its own."""

    def __init__(self, sink: str) -> None:
        self.data = bytearray()
        self.flowing = threading.Event()  # the first bytes came: the recording is running
        cmd = ["parec", "-d", f"{sink}.monitor", "--format=s16le", f"--rate={RATE}", "--channels=1", "--raw"]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        self._reader = threading.Thread(target=self._read, name="test-parec-reader")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while chunk := self._proc.stdout.read1(65536):
            self.data += chunk
            self.flowing.set()

    def __enter__(self) -> SinkRecording:
        self._reader.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._proc.terminate()
        self._proc.wait(10)
        self._reader.join(10)

    def loud_seconds(self) -> float:
        samples = np.frombuffer(bytes(self.data[: len(self.data) // 2048 * 2048]), np.int16) / 32768.0
        rms = np.sqrt(np.mean(samples.reshape(-1, 1024) ** 2, axis=1))
        return int(np.sum(rms > 0.02)) * 1024 / RATE


def output_devices_of_a_fresh_process() -> list[dict[str, Any]]:
    """The devices `speakcli devices` lists now (this process's PortAudio read the ALSA config at its start)."""
    result = run_cli("devices", "--json")
    assert result.returncode == 0, result.stderr
    devices: list[dict[str, Any]] = json.loads(result.stdout)
    assert not any(d["default"] and d["name"] == SECOND_DEVICE for d in devices)
    return devices


def test_output_device_by_name_plays_on_that_device(second_sink: str) -> None:
    # Not the default device: an --output-device that were ignored would play on the default sink, and this
    # sink's monitor would stay silent.
    assert SECOND_DEVICE in [d["name"] for d in output_devices_of_a_fresh_process()]
    with SinkRecording(second_sink) as rec:
        assert rec.flowing.wait(10)
        result = run_cli("say", "Pick a device.", "--engine", "piper", "--output-device", "second")
    assert result.returncode == 0, result.stderr
    assert rec.loud_seconds() > 0.4, f"{len(rec.data)} bytes recorded, none loud"
