"""Audio encodings (WAV, FLAC, Ogg Vorbis, Opus, MP3, AAC, M4A, raw PCM), whole or chunk by chunk as it is made."""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np

from speakcli.audio.sink import ByteSink
from speakcli.errors import UsageError


@dataclass(frozen=True)
class AudioFormat:
    """One output encoding; `rate` is a sample rate the format requires (Opus), else the audio's own is kept."""

    name: str
    extensions: tuple[str, ...]
    media_type: str
    container: str | None  # soundfile's format (PyAV's for AAC); None for raw PCM
    subtype: str | None
    rate: int | None = None
    streams: bool = True  # can be sent while it is made (FLAC's header needs the total length, M4A its index)
    pyav: bool = False  # encoded through PyAV (an optional package), not libsndfile


AUDIO_FORMATS: dict[str, AudioFormat] = {
    f.name: f
    for f in (
        AudioFormat("wav", (".wav",), "audio/wav", "WAV", "PCM_16"),
        AudioFormat("flac", (".flac",), "audio/flac", "FLAC", "PCM_16", streams=False),
        AudioFormat("ogg", (".ogg", ".oga"), "audio/ogg", "OGG", "VORBIS"),
        # libsndfile's Opus takes 8, 12, 16, 24 or 48 kHz; 48 kHz is what Opus decoders run at anyway.
        AudioFormat("opus", (".opus",), "audio/ogg; codecs=opus", "OGG", "OPUS", rate=48000),
        AudioFormat("mp3", (".mp3",), "audio/mpeg", "MP3", "MPEG_LAYER_III"),
        # AAC in ADTS frames, as OpenAI serves `aac`: each frame stands alone, so it streams.
        AudioFormat("aac", (".aac",), "audio/aac", "adts", "aac", pyav=True),
        # .m4b: the same file, by the name audiobook players look for (a batch's --concat adds chapters and tags).
        AudioFormat("m4a", (".m4a", ".m4b"), "audio/mp4", "ipod", "aac", streams=False, pyav=True),
        AudioFormat("pcm", (".pcm", ".raw"), "audio/pcm", None, None),
    )
}
EXTENSIONS: dict[str, AudioFormat] = {ext: f for f in AUDIO_FORMATS.values() for ext in f.extensions}

# MP3 and AAC carry these rates (of those up to 48 kHz); anything else is resampled to the nearest one above.
_MPEG_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


def audio_format(name: str) -> AudioFormat:
    """The format called `name` (wav, flac, ogg, opus, mp3, aac, m4a, pcm), or a usage error listing them; a
    format whose encoder is not installed is a `FormatUnavailableError` saying what to install."""
    fmt = AUDIO_FORMATS.get(name.lower().lstrip("."))
    if fmt is None:
        raise UsageError(f"audio format {name!r} is unknown; use one of: {', '.join(AUDIO_FORMATS)}")
    return available(fmt)


def available(fmt: AudioFormat) -> AudioFormat:
    """`fmt`, after checking its encoder is installed (AAC and M4A need PyAV): call it before any synthesis."""
    if fmt.pyav:
        from speakcli.audio.aac import pyav

        pyav()
    return fmt


def output_rate(fmt: AudioFormat, rate: int) -> int:
    """The sample rate `fmt` is written at, for audio made at `rate`."""
    if fmt.rate is not None:
        return fmt.rate
    if (fmt.name == "mp3" or fmt.pyav) and rate not in _MPEG_RATES:
        return next((r for r in _MPEG_RATES if r >= rate), 48000)
    return rate


def pcm16_samples(audio: np.ndarray) -> np.ndarray:
    """Float samples as 16-bit integers: the one quantisation every format here uses."""
    clipped = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    return np.round(clipped * 32767.0).astype("<i2")


def pcm16(audio: np.ndarray) -> bytes:
    """Float samples as 16-bit signed little-endian PCM."""
    return pcm16_samples(audio).tobytes()


def wav_header(rate: int, data_bytes: int | None = None) -> bytes:
    """A 16-bit mono WAV header; without `data_bytes` its sizes say "unknown length", for audio sent as it is made."""
    data_size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff_size = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    fmt_chunk = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    return struct.pack("<4sI4s", b"RIFF", riff_size, b"WAVE") + fmt_chunk + struct.pack("<4sI", b"data", data_size)


_BLOCK = 32768  # output samples resampled at a time


class Resampler:
    """Band-limited resampling that keeps state across chunks, so streamed audio has no seams.

    Each output sample is a Kaiser-windowed sinc over `2 * half_width` input samples; outputs wait for the input
    they need, and `flush` ends the stream with silence.
    """

    def __init__(self, src: int, dst: int, half_width: int = 16) -> None:
        g = math.gcd(src, dst)
        self.up, self.down = dst // g, src // g
        self.half = half_width
        self.cutoff = min(1.0, dst / src)  # below both Nyquist frequencies
        self._buf = np.zeros(half_width, dtype=np.float32)  # input from absolute index _start; zeros before 0
        self._start = -half_width
        self._n_in = 0
        self._m = 0  # next output index
        self._offsets = np.arange(-half_width + 1, half_width + 1)
        # Rates with a small common period (22050 -> 48000: 320 phases) get their weights computed once.
        self._table = self._kernels(np.arange(self.up)) if self.up <= 4096 else None

    def _kernels(self, phases: np.ndarray) -> np.ndarray:
        """One row of tap weights per output phase (its position between two input samples)."""
        d = (phases / self.up)[:, None] - self._offsets[None, :]
        window = np.i0(8.0 * np.sqrt(np.clip(1.0 - (d / self.half) ** 2, 0.0, 1.0))) / np.i0(8.0)
        kernel = np.sinc(self.cutoff * d) * window
        return (kernel / kernel.sum(axis=1, keepdims=True)).astype(np.float32)  # unit gain at DC, any phase

    def _emit(self, m_end: int) -> np.ndarray:
        # In blocks: the gather below takes 2 * half_width values per output sample, too much for a minute at once.
        parts = [self._emit_block(min(m, m_end)) for m in range(self._m + _BLOCK, m_end + _BLOCK, _BLOCK)]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def _emit_block(self, m_end: int) -> np.ndarray:
        if m_end <= self._m:
            return np.zeros(0, dtype=np.float32)
        m = np.arange(self._m, m_end, dtype=np.int64)
        base = (m * self.down) // self.up
        phase = m * self.down % self.up
        kernel = self._table[phase] if self._table is not None else self._kernels(phase)
        offsets = self._offsets
        idx = base[:, None] + offsets[None, :] - self._start
        out = (self._buf[idx] * kernel).sum(axis=1).astype(np.float32)
        self._m = m_end
        keep_from = int((m_end * self.down) // self.up) - self.half + 1 - self._start
        if keep_from > 0:
            self._buf = self._buf[keep_from:]
            self._start += keep_from
        return out

    def process(self, chunk: np.ndarray) -> np.ndarray:
        chunk = np.asarray(chunk, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, chunk])
        self._n_in += chunk.size
        # Output m needs input up to floor(m * down / up) + half.
        m_end = max(0, -(-(self._n_in - self.half) * self.up // self.down))
        return self._emit(m_end)

    def flush(self) -> np.ndarray:
        """The rest of the output: the stream's last samples, made against trailing silence."""
        self._buf = np.concatenate([self._buf, np.zeros(self.half + 1, dtype=np.float32)])
        return self._emit(-(-self._n_in * self.up // self.down))


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """`audio` at `dst` Hz."""
    if src == dst:
        return np.asarray(audio, dtype=np.float32)
    r = Resampler(src, dst)
    return np.concatenate([r.process(audio), r.flush()])


class StreamEncoder:
    """Encode audio chunk by chunk: `feed` returns the bytes ready so far, `finish` the rest.

    WAV gets a header that leaves the length open (browsers and libsndfile read it); FLAC, which needs the
    length up front, is encoded whole by `finish`.
    """

    def __init__(self, fmt: AudioFormat, rate: int) -> None:
        self.format = fmt
        self.rate = output_rate(fmt, rate)
        self._resampler = Resampler(rate, self.rate) if self.rate != rate else None
        self._held: list[np.ndarray] = []
        self._sink: ByteSink | None = None
        self._file: Any = None
        self._started = False
        self._adts: Any = None

    def _convert(self, audio: np.ndarray) -> np.ndarray:
        audio = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)
        return self._resampler.process(audio) if self._resampler is not None else audio

    def _encode(self, audio: np.ndarray) -> bytes:
        fmt = self.format
        if fmt.container is None:
            return pcm16(audio)
        if fmt.name == "wav":
            head = b"" if self._started else wav_header(self.rate)
            self._started = True
            return head + pcm16(audio)
        if not fmt.streams:
            self._held.append(audio)
            return b""
        if fmt.pyav:
            if self._adts is None:
                from speakcli.audio.aac import AdtsEncoder

                self._adts = AdtsEncoder(self.rate)
            return bytes(self._adts.feed(audio))
        if self._file is None:
            import soundfile as sf

            self._sink = ByteSink()
            # MP3 at a constant bit rate: a stream has no VBR header, and readers estimate its length from its size.
            extra = {"bitrate_mode": "CONSTANT", "compression_level": 0.5} if fmt.name == "mp3" else {}
            self._file = sf.SoundFile(self._sink, "w", self.rate, 1, format=fmt.container, subtype=fmt.subtype, **extra)
        if audio.size:
            self._file.write(audio)
        assert self._sink is not None
        return self._sink.take()

    def feed(self, audio: np.ndarray) -> bytes:
        return self._encode(self._convert(audio))

    def finish(self) -> bytes:
        tail = self._resampler.flush() if self._resampler is not None else np.zeros(0, dtype=np.float32)
        out = self._encode(tail)
        fmt = self.format
        if fmt.container is not None and not fmt.streams:
            return _whole(np.concatenate([*self._held, tail]), self.rate, fmt)
        if self._adts is not None:
            return out + bytes(self._adts.finish())
        if self._file is not None:
            self._file.close()
            assert self._sink is not None
            out += self._sink.take()
        return out


def _whole(audio: np.ndarray, rate: int, fmt: AudioFormat) -> bytes:
    """A format that cannot stream (FLAC, M4A), encoded in one piece from audio already at its rate."""
    if fmt.pyav:
        from speakcli.audio.aac import m4a

        return m4a(audio, rate)
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format=fmt.container, subtype=fmt.subtype)
    return buf.getvalue()


def encode(audio: np.ndarray, rate: int, fmt: AudioFormat) -> bytes:
    """`audio` (mono float at `rate`) as a whole file in `fmt`; WAV and FLAC get exact lengths in their headers."""
    if fmt.container in ("WAV", "FLAC"):
        out_rate = output_rate(fmt, rate)
        samples = pcm16_samples(resample(audio, rate, out_rate))
        if fmt.container == "WAV":
            return wav_header(out_rate, samples.nbytes) + samples.tobytes()
        return _whole(samples, out_rate, fmt)  # int16 in: no rescaling
    enc = StreamEncoder(fmt, rate)
    return enc.feed(audio) + enc.finish()
