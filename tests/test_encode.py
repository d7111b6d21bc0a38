"""Encodings: every format decodes back to the audio it was given, whole or streamed chunk by chunk."""

from __future__ import annotations

import io
import sys

import numpy as np
import pytest
import soundfile as sf

from speakcli.audio import aac
from speakcli.audio.encode import AUDIO_FORMATS, Resampler, StreamEncoder, audio_format, encode, resample
from speakcli.errors import FormatUnavailableError, UsageError

RATE = 22050


def sine(seconds: float = 1.0, freq: float = 440.0, rate: int = RATE) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def decode(data: bytes, fmt_name: str, rate: int) -> tuple[np.ndarray, int]:
    if fmt_name == "pcm":
        return np.frombuffer(data, "<i2").astype(np.float32) / 32767, rate
    if fmt_name in ("aac", "m4a"):  # libsndfile reads neither; PyAV (FFmpeg) does
        return aac.decode(data)
    audio, got = sf.read(io.BytesIO(data), dtype="float32")
    return audio, got


def snr_db(ref: np.ndarray, got: np.ndarray) -> float:
    return float(10 * np.log10(np.mean(ref**2) / np.mean((ref - got) ** 2)))


def streamed(fmt_name: str, audio: np.ndarray, pieces: int = 9) -> tuple[bytes, list[bytes], int]:
    enc = StreamEncoder(audio_format(fmt_name), RATE)
    parts = [enc.feed(c) for c in np.array_split(audio, pieces)]
    parts.append(enc.finish())
    return b"".join(parts), parts, enc.rate


@pytest.mark.parametrize("name", list(AUDIO_FORMATS))
def test_each_format_round_trips_whole_and_streamed(name: str) -> None:
    audio = sine(1.0)
    for data, rate in [(encode(audio, RATE, audio_format(name)), None), streamed(name, audio)[::2]]:
        back, got_rate = decode(data, name, rate or RATE)
        expected_rate = 48000 if name == "opus" else RATE
        assert got_rate == expected_rate
        # Lossy codecs add a little delay and padding; every format keeps the length within 0.1 s.
        assert abs(len(back) / got_rate - 1.0) < 0.1, (name, len(back))
        if name in ("wav", "flac", "pcm"):
            assert np.max(np.abs(back - audio)) < 1e-3
        else:  # lossy: the tone is there, at its level
            assert 0.3 < float(np.sqrt(np.mean(back**2))) < 0.45


@pytest.mark.parametrize("name", ["wav", "pcm", "mp3", "opus", "ogg", "aac"])
def test_streamed_formats_give_bytes_before_the_end(name: str) -> None:
    _, parts, _ = streamed(name, sine(2.0), pieces=8)
    # Some bytes out before the last chunk went in: a client can start playing.
    assert sum(len(p) for p in parts[:-2]) > 0


def test_a_streamed_wav_header_leaves_the_length_open_and_still_decodes() -> None:
    data, parts, _ = streamed("wav", sine(0.5))
    assert parts[0][:4] == b"RIFF" and parts[0][4:8] == b"\xff\xff\xff\xff"
    back, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == RATE and len(back) == len(sine(0.5))


def test_flac_is_sent_whole_at_the_end() -> None:
    _, parts, _ = streamed("flac", sine(0.5))
    assert all(p == b"" for p in parts[:-1]) and parts[-1][:4] == b"fLaC"


def test_aac_streams_as_adts_frames_each_standing_alone() -> None:
    data, parts, _ = streamed("aac", sine(2.0), pieces=8)
    assert data[:2] == b"\xff\xf1"  # an ADTS sync word: MPEG-4 AAC without a container, as OpenAI serves it
    # What was sent before the end decodes on its own: a player needs no more to start.
    early = b"".join(parts[:4])
    back, rate = aac.decode(early)
    assert rate == RATE and len(back) / rate > 0.5


def test_m4a_is_sent_whole_at_the_end_with_its_index_first() -> None:
    _, parts, _ = streamed("m4a", sine(0.5))
    assert all(p == b"" for p in parts[:-1])
    whole = parts[-1]
    assert whole[4:12] == b"ftypM4A "
    # The index (moov) before the samples (mdat): a player can start on the first bytes of a download.
    assert 0 < whole.find(b"moov") < whole.find(b"mdat")


def test_aac_and_m4a_without_pyav_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    for name in ("aac", "m4a"):
        with pytest.raises(FormatUnavailableError, match=r"pip install 'speakcli\[aac\]'"):
            audio_format(name)
    audio_format("mp3")  # the rest need no PyAV


def test_unknown_format_names_the_ones_there_are() -> None:
    with pytest.raises(UsageError, match="use one of: wav, flac, ogg, opus, mp3, aac, m4a, pcm"):
        audio_format("wma")


@pytest.mark.parametrize("dst", [24000, 48000, 16000])
def test_resampling_keeps_a_tone_clean_and_the_length_exact(dst: int) -> None:
    out = resample(sine(1.0), RATE, dst)
    assert len(out) == dst
    ref = sine(1.0, rate=dst)
    edge = dst // 20  # the first and last samples are made against silence
    assert snr_db(ref[edge:-edge], out[edge:-edge]) > 60


def test_resampling_in_chunks_gives_the_same_samples_as_whole() -> None:
    audio = sine(1.3, freq=1234.0)
    whole = resample(audio, RATE, 48000)
    r = Resampler(RATE, 48000)
    sizes = [1, 7, 500, 3, 10000, 2]
    pieces, start = [], 0
    for size in [*sizes, len(audio)]:
        pieces.append(r.process(audio[start : start + size]))
        start += size
    pieces.append(r.flush())
    assert np.array_equal(np.concatenate(pieces), whole)
