"""Audio files: format by extension, atomic writes, reading any rate/channels, and click-free seams."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speakcli import audio, fsutil
from speakcli.audio import playback
from speakcli.errors import Hint, OutputError, VoiceError
from speakcli.testing import tone


@pytest.mark.parametrize(("ext", "fmt"), [(".wav", "WAV"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_round_trip_by_extension(tmp_path: Path, ext: str, fmt: str) -> None:
    path = tmp_path / f"out{ext}"
    audio.write_audio(path, tone(), 24000)
    info = sf.info(path)
    assert info.format == fmt
    assert info.samplerate == 24000
    back, rate = sf.read(path, dtype="float32")
    assert rate == 24000 and len(back) == len(tone())
    if ext != ".ogg":  # lossless formats come back within 16-bit quantisation
        assert np.max(np.abs(back - tone())) < 1e-3


def test_unknown_extension_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match=r"\.wav, \.flac, \.ogg, \.oga, \.opus, \.mp3"):
        audio.check_output_path(tmp_path / "out.wma")


def test_existing_file_needs_force(tmp_path: Path) -> None:
    path = tmp_path / "out.wav"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists") as caught:
        audio.check_output_path(path)
    assert caught.value.hint == Hint.FORCE  # the CLI words it as --force, a server its own way
    audio.check_output_path(path, force=True)


def test_missing_folder_is_reported_before_synthesis(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="does not exist"):
        audio.check_output_path(tmp_path / "nope" / "out.wav")


def test_failed_write_leaves_old_file_intact_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    path = out_dir / "out.wav"
    path.write_bytes(b"precious")

    def disk_full(fd: int) -> None:  # the bytes went into the temp file, then the disk filled up
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fsutil.os, "fsync", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        audio.write_audio(path, tone(), 24000)
    assert path.read_bytes() == b"precious"
    assert os.listdir(out_dir) == ["out.wav"]


def test_read_audio_mixes_down_and_keeps_rate(tmp_path: Path) -> None:
    stereo = np.stack([tone(rate=44100), -tone(rate=44100) * 0], axis=1)
    sf.write(tmp_path / "s.wav", stereo, 44100)
    mono, rate = audio.read_audio(tmp_path / "s.wav")
    assert rate == 44100 and mono.ndim == 1
    assert np.allclose(mono, stereo.mean(axis=1), atol=1e-4)


def test_read_audio_rejects_non_audio(tmp_path: Path) -> None:
    bad = tmp_path / "notes.wav"
    bad.write_text("this is not audio")
    with pytest.raises(VoiceError, match="cannot read"):
        audio.read_audio(bad)


def test_faded_stream_starts_and_ends_at_zero_and_keeps_the_middle() -> None:
    chunks = [np.ones(1000, np.float32), np.ones(1000, np.float32), np.ones(1000, np.float32)]
    out = list(audio.faded(chunks, 24000))
    joined = np.concatenate(out)
    assert len(joined) == 3000
    assert joined[0] == 0.0 and joined[-1] == 0.0
    assert np.all(joined[200:2800] == 1.0)  # only the outer ~5 ms are touched
    assert np.all(np.diff(joined[:120]) >= 0)


def test_a_fader_hands_on_a_chunk_at_once_but_for_the_fade_out_span() -> None:
    """Only the last 5 ms of the latest chunk wait for the next one (they would be faded out if it were the last),
    so a streamed sentence's first audio is not held back for a whole chunk."""
    fader = audio.Fader(24000)
    span = int(24000 * audio.FADE_SECONDS)
    first = fader.push(np.ones(1000, np.float32))
    assert [len(c) for c in first] == [1000 - span] and first[0][0] == 0.0  # faded in, handed on now
    assert [len(c) for c in fader.push(np.ones(1000, np.float32))] == [1000]  # the tail held, then this one's body
    end = fader.finish()
    assert [len(c) for c in end] == [span] and end[0][-1] == 0.0


def test_a_fader_gives_the_samples_of_fading_the_first_and_last_chunks_whole() -> None:
    """Whatever the chunk lengths (short ones too, and a sentence of one chunk), the stream is the first chunk faded
    in and the last faded out, as fade() does each."""
    rng = np.random.default_rng(0)
    for _ in range(500):
        chunks = [rng.standard_normal(n).astype(np.float32) for n in rng.integers(0, 400, size=rng.integers(1, 5))]
        kept = [c for c in chunks if len(c)]
        want = [
            audio.fade(c, 24000, i == 0, i == len(kept) - 1) if i in (0, len(kept) - 1) else c
            for i, c in enumerate(kept)
        ]
        got = list(audio.faded(chunks, 24000))
        assert np.array_equal(np.concatenate(got or [np.zeros(0)]), np.concatenate(want or [np.zeros(0)]))


def test_sounddevice_missing_is_an_audio_device_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_portaudio(name, *args, **kwargs):  # type: ignore[no-untyped-def]
        if name == "sounddevice":
            raise OSError("PortAudio library not found")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_portaudio)
    from speakcli.errors import AudioDeviceError

    with pytest.raises(AudioDeviceError, match=r"libportaudio2") as caught:
        playback.Player(22050)
    assert caught.value.hint == Hint.WRITE_FILE


@pytest.mark.parametrize("length", [241, 254, 255])
def test_a_long_legal_output_name_still_gets_a_temp_name_that_fits(tmp_path: Path, length: int) -> None:
    out = tmp_path / "out"
    out.mkdir()
    path = out / ("n" * (length - 4) + ".wav")
    audio.write_audio(path, tone(0.05), 24000)
    assert path.is_file() and os.listdir(out) == [path.name]


def test_a_multibyte_name_is_shortened_on_a_character_boundary(tmp_path: Path) -> None:
    path = tmp_path / ("é" * 125 + ".wav")  # 254 bytes in UTF-8
    audio.write_audio(path, tone(0.05), 24000)
    assert path.is_file()
