"""Audio I/O: atomic file writing, reference reading, seam fades, and streamed playback via sounddevice."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.errors import AudioDeviceError, OutputError, VoiceError
from speakcli.fsutil import atomic_write

FORMATS: dict[str, tuple[str, str | None]] = {
    ".wav": ("WAV", "PCM_16"),
    ".flac": ("FLAC", "PCM_16"),
    ".ogg": ("OGG", "VORBIS"),
}
FADE_SECONDS = 0.005


def output_format(path: str | Path) -> tuple[str, str | None]:
    """The soundfile (format, subtype) for an output path, chosen by its extension."""
    if str(path) == "-":
        return FORMATS[".wav"]
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise OutputError(
            f"cannot tell the audio format of {str(path)!r}; end the name with {', '.join(FORMATS)} (or use - for WAV)"
        )
    return FORMATS[ext]


def check_output_path(path: str | Path, force: bool = False) -> None:
    """Fail before any synthesis if `path` cannot be written or would overwrite work."""
    output_format(path)
    if str(path) == "-":
        return
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"{p} is a directory; give a file name such as {p / 'speech.wav'}")
    if p.exists() and not force:
        raise OutputError(f"{p} already exists; pass --force to overwrite it")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise OutputError(f"folder {parent} does not exist; create it or choose another output path")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"folder {parent} is not writable; choose another output path")


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio to `path` (or WAV to stdout for '-') atomically: temp file, fsync, rename."""
    import soundfile as sf

    fmt, subtype = output_format(path)
    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    if str(path) == "-":
        out = io.BytesIO()
        sf.write(out, audio, sample_rate, format=fmt, subtype=subtype)
        try:
            sys.stdout.buffer.write(out.getvalue())
            sys.stdout.buffer.flush()
        except BrokenPipeError:
            raise  # the reader left on purpose (`| head`); the CLI ends quietly
        except OSError as exc:
            raise OutputError(f"could not write audio to stdout: {exc.strerror or exc}") from None
        return
    p = Path(path)
    try:
        buf = io.BytesIO()
        sf.write(buf, audio, sample_rate, format=fmt, subtype=subtype)
        atomic_write(p, buf.getvalue())
    except OSError as exc:
        raise OutputError(f"could not write {p}: {exc.strerror or exc}") from None


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of any file libsndfile reads (WAV, FLAC, OGG...), any channel count."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise VoiceError(f"cannot read {path} as audio ({exc}); use a WAV, FLAC or OGG file") from None
    return data.mean(axis=1).astype(np.float32), int(rate)


def fade(chunk: np.ndarray, sample_rate: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """A copy of `chunk` with a few ms linear fade at its ends, so seams between sentences do not click."""
    n = min(int(sample_rate * FADE_SECONDS), len(chunk) // 2)
    out = np.array(chunk, dtype=np.float32, copy=True)
    if n > 0:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        if fade_in:
            out[:n] *= ramp
        if fade_out:
            out[-n:] *= ramp[::-1]
    return out


def faded(chunks: Iterable[np.ndarray], sample_rate: int) -> Iterator[np.ndarray]:
    """Stream `chunks`, fading in the first and out the last, with one chunk of look-ahead."""
    pending: np.ndarray | None = None
    first = True
    for chunk in chunks:
        if len(chunk) == 0:
            continue
        if pending is not None:
            yield fade(pending, sample_rate, first, False) if first else pending
            first = False
        pending = chunk
    if pending is not None:
        yield fade(pending, sample_rate, first, True)


def _sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError:
        raise AudioDeviceError(
            "cannot play audio: the PortAudio library is missing (install libportaudio2); "
            "or write a file with -o speech.wav"
        ) from None
    return sd


def output_devices() -> list[dict[str, Any]]:
    """Audio output devices PortAudio sees: index, name, host API, channels, and which is the default."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_out = sd.default.device[1]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list audio devices ({exc}); or write a file with -o speech.wav") from None
    return [
        {
            "index": i,
            "name": d["name"],
            "hostapi": sd.query_hostapis(d["hostapi"])["name"],
            "channels": d["max_output_channels"],
            "default": i == default_out,
        }
        for i, d in enumerate(devices)
        if d["max_output_channels"] > 0
    ]


def resolve_output_device(spec: str | None) -> int | None:
    """The device index for --output-device: an index, or a case-insensitive part of a device name."""
    devices = output_devices()
    if not devices:
        raise AudioDeviceError("no audio output device found; write a file with -o speech.wav, or start a sound server")
    if spec is None or spec == "":
        return None
    if spec.isdigit():
        if any(d["index"] == int(spec) for d in devices):
            return int(spec)
    else:
        matches = [d for d in devices if spec.lower() in d["name"].lower()]
        if len(matches) == 1:
            return int(matches[0]["index"])
        exact = [d for d in matches if d["name"].lower() == spec.lower()]
        if len(exact) == 1:
            return int(exact[0]["index"])
        if len(matches) > 1:
            names = ", ".join(f"{d['index']}: {d['name']}" for d in matches)
            raise AudioDeviceError(f"output device {spec!r} matches several devices ({names}); use its index")
    names = ", ".join(f"{d['index']}: {d['name']}" for d in devices)
    raise AudioDeviceError(f"no output device {spec!r}; available: {names}")


class Player:
    """A blocking output stream: `write` returns once the chunk is queued, `close` waits until it has played."""

    def __init__(self, sample_rate: int, device: str | None = None) -> None:
        sd = _sounddevice()
        index = resolve_output_device(device)
        try:
            self._stream = sd.OutputStream(samplerate=sample_rate, channels=1, dtype="float32", device=index)
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"cannot open the audio output ({exc}); pick one with --output-device (see speakcli info) "
                "or write a file with -o speech.wav"
            ) from None
        self.sample_rate = sample_rate
        self.seconds = 0.0

    def write(self, chunk: np.ndarray) -> None:
        data = np.ascontiguousarray(np.clip(chunk, -1.0, 1.0), dtype=np.float32).reshape(-1, 1)
        self._stream.write(data)
        self.seconds += len(data) / self.sample_rate

    def close(self) -> None:
        # stop() returns after the buffers already queued have played; abort() would cut them off.
        with contextlib.suppress(Exception):
            self._stream.stop()
        self._stream.close()

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._stream.abort()
        self._stream.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, exc_type: object, *_: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def play(chunks: Iterable[np.ndarray], sample_rate: int, device: str | None = None) -> float:
    """Play chunks as they arrive; returns the seconds of audio played."""
    with Player(sample_rate, device) as player:
        for chunk in chunks:
            player.write(chunk)
    return player.seconds


class StreamPlayer:
    """A long-lived output stream fed from a buffer; silence when idle, so consecutive utterances join gaplessly.

    `write` queues audio (blocking while more than `max_buffer` seconds wait), `mark` returns the frame index
    where the next write will start, and `reached(index)` tells when the device pulled that frame.
    """

    def __init__(self, sample_rate: int, device: str | None = None, max_buffer: float = 4.0) -> None:
        import threading
        from collections import deque

        sd = _sounddevice()
        index = resolve_output_device(device)
        self.sample_rate = sample_rate
        self._chunks: deque[np.ndarray] = deque()
        self._cv = threading.Condition()
        self._queued = 0  # frames written, total
        self._played = 0  # frames pulled by the device, total
        self._max = int(max_buffer * sample_rate)
        self._marks: list[int] = []
        self._reached: dict[int, float] = {}
        self._closed = False
        try:
            self._stream = sd.OutputStream(
                samplerate=sample_rate, channels=1, dtype="float32", device=index, callback=self._callback
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(
                f"cannot open the audio output ({exc}); pick one with --output-device (see speakcli info) "
                "or run with --no-play --output-dir DIR"
            ) from None

    def _callback(self, outdata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        import time

        now = time.monotonic()
        out = outdata[:, 0]
        filled = 0
        with self._cv:
            while filled < frames and self._chunks:
                head = self._chunks[0]
                take = min(frames - filled, len(head))
                out[filled : filled + take] = head[:take]
                if take == len(head):
                    self._chunks.popleft()
                else:
                    self._chunks[0] = head[take:]
                filled += take
            start = self._played
            self._played += filled
            while self._marks and self._marks[0] < self._played:
                mark = self._marks.pop(0)
                self._reached[mark] = now + (mark - start) / self.sample_rate
            self._cv.notify_all()
        out[filled:] = 0.0

    @property
    def latency(self) -> float:
        return float(self._stream.latency)

    def mark(self) -> int:
        """The frame index the next write starts at; `reached` reports when the device pulls it."""
        with self._cv:
            self._marks.append(self._queued)
            return self._queued

    def reached(self, index: int) -> float | None:
        with self._cv:
            return self._reached.get(index)

    def write(self, chunk: np.ndarray) -> None:
        data = np.ascontiguousarray(np.clip(chunk, -1.0, 1.0), dtype=np.float32).reshape(-1)
        with self._cv:
            while self._queued - self._played > self._max and not self._closed:
                self._cv.wait(0.5)
            self._chunks.append(data)
            self._queued += len(data)

    def buffered(self) -> float:
        """Seconds of audio written but not yet pulled by the device."""
        with self._cv:
            return (self._queued - self._played) / self.sample_rate

    def wait_until_buffered_below(self, seconds: float, timeout: float | None = None) -> bool:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cv:
            while (self._queued - self._played) / self.sample_rate > seconds and not self._closed:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cv.wait(0.5 if remaining is None else min(0.5, remaining))
        return True

    def close(self, drain: bool = True) -> None:
        if drain:
            self.wait_until_buffered_below(0.0, timeout=30)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        with contextlib.suppress(Exception):
            self._stream.stop()
        self._stream.close()
