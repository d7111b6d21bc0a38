"""Playback through PortAudio (sounddevice, imported only when audio is played): devices, players."""

from __future__ import annotations

import contextlib
import threading
from typing import Any

import numpy as np

from speakcli.errors import AudioDeviceError, Hint


def _sounddevice() -> Any:
    try:
        import sounddevice as sd
    except OSError:
        raise AudioDeviceError(
            "cannot play audio: the PortAudio library is missing (install libportaudio2)", hint=Hint.WRITE_FILE
        ) from None
    return sd


def output_devices() -> list[dict[str, Any]]:
    """Audio output devices PortAudio sees: index, name, host API, channels, and which is the default."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        default_out = sd.default.device[1]
    except sd.PortAudioError as exc:
        raise AudioDeviceError(f"cannot list audio devices ({exc})", hint=Hint.WRITE_FILE) from None
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
        raise AudioDeviceError("no audio output device found; start a sound server", hint=Hint.WRITE_FILE)
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
            raise AudioDeviceError(f"cannot open the audio output ({exc})", hint=Hint.OUTPUT_DEVICE) from None
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


class StreamPlayer:
    """A long-lived output stream fed from a buffer; silence when idle, so consecutive utterances join gaplessly.

    `write` queues audio (blocking while more than `max_buffer` seconds wait), `mark` returns the frame index
    where the next write will start, and `reached(index)` tells when the device pulled that frame. `cut` drops
    what is queued and what is written until the next `mark` (the rest of an utterance); `pause` holds the device
    on silence, keeping what is queued for `resume`.
    """

    def __init__(self, sample_rate: int, device: str | None = None, max_buffer: float = 4.0) -> None:
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
        self._paused = False
        self._dropping = False  # after a cut, until the next mark: writes are the cut utterance's rest
        self._cut_waiting = False  # a cut whose silence the device has not reached yet
        self.silent_at: float | None = None  # time.monotonic() the device's output fell silent after the last cut
        try:
            self._stream = sd.OutputStream(
                samplerate=sample_rate, channels=1, dtype="float32", device=index, callback=self._callback
            )
            self._stream.start()
        except sd.PortAudioError as exc:
            raise AudioDeviceError(f"cannot open the audio output ({exc})", hint=Hint.OUTPUT_DEVICE) from None

    def _callback(self, outdata: np.ndarray, frames: int, t: Any, status: Any) -> None:
        import time

        now = time.monotonic()
        out = outdata[:, 0]
        filled = 0
        with self._cv:
            if self._cut_waiting:
                # Silence starts at this buffer, which reaches the speaker after the device's own latency.
                ahead = getattr(t, "outputBufferDacTime", 0.0) - getattr(t, "currentTime", 0.0)
                self.silent_at = now + (ahead if 0.0 < ahead < 1.0 else 0.0)
                self._cut_waiting = False
                self._cv.notify_all()
            while filled < frames and self._chunks and not self._paused:
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

    def mark(self) -> int:
        """The frame index the next write starts at; `reached` reports when the device pulls it."""
        with self._cv:
            self._dropping = False
            self._marks.append(self._queued)
            return self._queued

    def reached(self, index: int) -> float | None:
        with self._cv:
            return self._reached.get(index)

    def write(self, chunk: np.ndarray) -> None:
        data = np.ascontiguousarray(np.clip(chunk, -1.0, 1.0), dtype=np.float32).reshape(-1)
        with self._cv:
            while self._queued - self._played > self._max and not self._closed and not self._dropping:
                self._cv.wait(0.5)
            if self._dropping:
                return
            self._chunks.append(data)
            self._queued += len(data)

    def cut(self) -> int:
        """Drop the audio not played yet, and every write until the next `mark`; returns the frames played so far.

        The device falls silent at its next buffer (`silent_at` says when, see `wait_silent`).
        """
        with self._cv:
            self._chunks.clear()
            self._queued = self._played
            self._marks = [m for m in self._marks if m < self._played]
            self._dropping = True
            self._cut_waiting = True
            self.silent_at = None
            self._cv.notify_all()
            return self._played

    def wait_silent(self, timeout: float) -> float | None:
        """When (time.monotonic()) the device fell silent after the last cut; None if not within `timeout` s."""
        with self._cv:
            self._cv.wait_for(lambda: not self._cut_waiting or self._closed, timeout)
            return self.silent_at

    def pause(self) -> None:
        """Hold the output on silence; what is queued stays queued (writes block once the buffer is full)."""
        with self._cv:
            self._paused = True

    def resume(self) -> None:
        with self._cv:
            self._paused = False
            self._cv.notify_all()

    def played(self) -> int:
        """Frames the device has pulled so far."""
        with self._cv:
            return self._played

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
