"""Reference clips for cloning: bounded reads, clear errors for unusable audio, warnings, trimmed copies."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.errors import OutputError, VoiceError

MIN_TOTAL_SECONDS = 2.0
SILENCE_PEAK = 1e-3
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.01
# What is read of a clip when the caller names no limit: XTTS v2 uses 10 s (max_ref_len), never more than 30.
DEFAULT_USED_SECONDS = 30.0
_BLOCK_SAMPLES = 1 << 18  # samples per read (1 MB as float32): memory stays bounded whatever the clip's size


def _block_frames(channels: int) -> int:
    return max(1, _BLOCK_SAMPLES // max(1, channels))


def _open(path: Path) -> Any:
    import soundfile as sf

    try:
        return sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise VoiceError(
            f"cannot read {path} as audio ({exc}); use a WAV, FLAC, OGG, MP3 or other file libsndfile reads"
        ) from None


def _used_frames(rate: int, frames: int, seconds: float | None) -> int:
    return frames if seconds is None else min(frames, round(seconds * rate))


def read_reference(path: Path, seconds: float | None = DEFAULT_USED_SECONDS) -> tuple[np.ndarray, int]:
    """Mono float32 samples of a clip's first `seconds` (all of it for None) and its rate, read block by block.

    Only the part the model uses is decoded and only its mono mix is kept, so an hour-long 8-channel
    recording costs as much memory as its first seconds.
    """
    import soundfile as sf

    with _open(path) as fh:
        rate = int(fh.samplerate)
        want = _used_frames(rate, fh.frames, seconds)
        mono = np.zeros(want, dtype=np.float32)
        done = 0
        try:
            while done < want:
                block = fh.read(min(_block_frames(fh.channels), want - done), dtype="float32", always_2d=True)
                if len(block) == 0:  # the header over-stated the length (a truncated file): keep what is there
                    break
                mono[done : done + len(block)] = block.mean(axis=1)
                done += len(block)
        except (sf.LibsndfileError, RuntimeError, OSError) as exc:
            raise VoiceError(f"cannot read {path} as audio ({exc}); the file is damaged") from None
    return mono[:done], rate


def clip_info(path: Path) -> tuple[int, int, int]:
    """(sample rate, channels, frames) from a clip's header; VoiceError if libsndfile cannot read it."""
    with _open(path) as fh:
        return int(fh.samplerate), int(fh.channels), int(fh.frames)


def stored_suffix(path: Path) -> str:
    """How a cut copy of `path` is stored: FLAC (lossless for PCM; at most 8 channels below 655 kHz), else WAV."""
    rate, channels, _ = clip_info(path)
    return ".flac" if channels <= 8 and rate <= 655350 else ".wav"


def store_used_part(src: Path, dest: Path, seconds: float) -> None:
    """Write the first `seconds` of `src` (all channels, its rate) to `dest`, FLAC or float WAV by its suffix,
    block by block: memory stays bounded however long the source is."""
    import soundfile as sf

    with _open(src) as fh:
        rate, channels = int(fh.samplerate), int(fh.channels)
        want = _used_frames(rate, fh.frames, seconds)
        if dest.suffix.lower() == ".flac":
            fmt, subtype = "FLAC", "PCM_16" if fh.subtype in ("PCM_16", "PCM_S8", "PCM_U8") else "PCM_24"
        else:
            fmt, subtype = "WAV", "FLOAT"
        writing = (sf.LibsndfileError, RuntimeError, OSError)
        try:
            sink = sf.SoundFile(str(dest), "w", rate, channels, subtype, format=fmt)
        except writing as exc:  # the voice's own folder: an output problem, not the clip's
            raise OutputError(f"cannot write {dest} ({exc})") from None
        with sink:
            done = 0
            while done < want:
                try:
                    block = fh.read(min(_block_frames(fh.channels), want - done), dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:
                    raise VoiceError(f"cannot read {src} as audio ({exc}); the file is damaged") from None
                if len(block) == 0:
                    break
                try:
                    sink.write(np.clip(block, -1.0, 1.0))
                except writing as exc:
                    raise OutputError(f"cannot write {dest} ({exc})") from None
                done += len(block)


@dataclass
class ClipReport:
    path: Path
    seconds: float  # the whole clip
    sample_rate: int
    channels: int
    used_seconds: float = 0.0  # what the model uses: its first max_seconds_per_clip


@dataclass
class ReferenceReport:
    clips: list[ClipReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(c.used_seconds for c in self.clips)


def check_references(paths: list[Path], max_seconds_per_clip: float | None = None) -> ReferenceReport:
    """Check what the model will use of every clip: raise VoiceError for unreadable, empty, silent or too-short
    audio; warn on the rest. Reads at most `max_seconds_per_clip` (else DEFAULT_USED_SECONDS) of each clip."""
    if not paths:
        raise VoiceError("no reference clips given; pass one or more audio files (WAV, FLAC, OGG, MP3...)")
    used_limit = max_seconds_per_clip or DEFAULT_USED_SECONDS
    clips, warnings = [], []
    for path in paths:
        if not path.is_file():
            raise VoiceError(f"reference clip {path} does not exist")
        rate, channels, frames = clip_info(path)
        samples, _ = read_reference(path, used_limit)
        if samples.size == 0:
            raise VoiceError(f"reference clip {path} is empty; record a few seconds of clear speech")
        seconds = frames / rate
        peak = float(np.max(np.abs(samples)))
        if peak < SILENCE_PEAK:
            where = "" if seconds <= used_limit else f" in its first {used_limit:.0f} s (all the model uses)"
            raise VoiceError(f"reference clip {path} is silent{where}; record a few seconds of clear speech")
        if float(np.mean(np.abs(samples) >= CLIP_LEVEL)) > CLIP_FRACTION:
            warnings.append(f"{path.name} is clipped (distorted); a quieter recording will clone better")
        if max_seconds_per_clip and seconds > max_seconds_per_clip:
            warnings.append(
                f"{path.name} is {seconds:.0f} s long; only its first {max_seconds_per_clip:.0f} s are used"
            )
        clips.append(ClipReport(path, seconds, rate, channels, samples.size / rate))
    report = ReferenceReport(clips, warnings)
    if report.total_seconds < MIN_TOTAL_SECONDS:
        raise VoiceError(
            f"reference audio is {report.total_seconds:.1f} s in total; give at least {MIN_TOTAL_SECONDS:.0f} s "
            "(6-10 s of clear speech clones best)"
        )
    return report
