"""AAC through PyAV (whose wheels carry FFmpeg): ADTS streamed as it is made, M4A whole; and reading them back."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.audio.sink import ByteSink
from speakcli.errors import FormatUnavailableError, OutputError

BIT_RATE = 64000  # mono speech: plenty for a voice in AAC-LC


def pyav() -> Any:
    """The `av` module, or an error saying which extra installs it."""
    try:
        import av
    except ImportError:
        raise FormatUnavailableError(
            "AAC and M4A output need PyAV, which is not installed; pip install 'speakcli[aac]'"
        ) from None
    return av


def _frame(av: Any, audio: np.ndarray, rate: int, pts: int) -> Any:
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(audio, dtype=np.float32)[None, :], format="flt", layout="mono"
    )
    frame.sample_rate = rate
    frame.pts = pts
    return frame


class AdtsEncoder:
    """AAC in ADTS frames, chunk by chunk: each frame stands alone, so a player starts on the first bytes."""

    def __init__(self, rate: int) -> None:
        av = self._av = pyav()
        self.rate = rate
        self._sink = ByteSink()
        self._container = av.open(self._sink, "w", format="adts")
        self._stream = self._container.add_stream("aac", rate=rate, layout="mono")
        self._stream.bit_rate = BIT_RATE
        self._pts = 0

    def _mux(self, frame: Any) -> bytes:
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.take()

    def feed(self, audio: np.ndarray) -> bytes:
        if not audio.size:
            return b""
        frame = _frame(self._av, audio, self.rate, self._pts)
        self._pts += audio.size
        return self._mux(frame)

    def finish(self) -> bytes:
        out = self._mux(None)
        self._container.close()
        return out + self._sink.take()


def m4a(audio: np.ndarray, rate: int) -> bytes:
    """`audio` as an M4A file (AAC in MP4) with its index first, so a player can start before it has it all."""
    av = pyav()
    # The index moves to the front in a second pass over the file (movflags faststart), which FFmpeg makes by
    # reopening it by name: so a temporary file, not memory.
    with tempfile.TemporaryDirectory(prefix="speakcli-m4a-") as folder:
        path = os.path.join(folder, "audio.m4a")
        with av.open(path, "w", format="ipod", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("aac", rate=rate, layout="mono")
            stream.bit_rate = BIT_RATE
            for frame in (_frame(av, audio, rate, 0), None) if audio.size else (None,):
                for packet in stream.encode(frame):
                    container.mux(packet)
        return Path(path).read_bytes()


def decode(source: Path | bytes) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of an AAC (ADTS) or M4A file, or of its bytes."""
    av = pyav()
    name = str(source) if isinstance(source, Path) else "the audio"
    parts: list[np.ndarray] = []
    try:
        with av.open(io.BytesIO(source) if isinstance(source, bytes) else str(source), "r") as container:
            rate = int(container.streams.audio[0].codec_context.sample_rate)
            mono = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in [*container.decode(audio=0), None]:
                parts += [f.to_ndarray().reshape(-1) for f in mono.resample(frame)]
    except (av.error.FFmpegError, IndexError) as exc:
        raise OutputError(f"cannot read {name} as AAC or M4A ({exc})") from None
    return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), rate
