"""Checks on reference clips for cloning: clear errors for unusable audio, warnings for poor audio."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speakcli.audio import read_audio
from speakcli.errors import VoiceError

MIN_TOTAL_SECONDS = 2.0
SILENCE_PEAK = 1e-3
CLIP_LEVEL = 0.999
CLIP_FRACTION = 0.01


@dataclass
class ClipReport:
    path: Path
    seconds: float
    sample_rate: int
    channels: int


@dataclass
class ReferenceReport:
    clips: list[ClipReport]
    warnings: list[str] = field(default_factory=list)

    @property
    def total_seconds(self) -> float:
        return sum(c.seconds for c in self.clips)


def check_references(paths: list[Path], max_seconds_per_clip: float | None = None) -> ReferenceReport:
    """Read every clip; raise VoiceError for unreadable, empty, silent or too-short audio; warn on the rest."""
    import soundfile as sf

    if not paths:
        raise VoiceError("no reference clips given; pass one or more WAV files")
    clips, warnings = [], []
    for path in paths:
        if not path.is_file():
            raise VoiceError(f"reference clip {path} does not exist")
        samples, rate = read_audio(path)
        channels = sf.info(str(path)).channels
        if samples.size == 0:
            raise VoiceError(f"reference clip {path} is empty; record a few seconds of clear speech")
        peak = float(np.max(np.abs(samples)))
        if peak < SILENCE_PEAK:
            raise VoiceError(f"reference clip {path} is silent; record a few seconds of clear speech")
        seconds = samples.size / rate
        if float(np.mean(np.abs(samples) >= CLIP_LEVEL)) > CLIP_FRACTION:
            warnings.append(f"{path.name} is clipped (distorted); a quieter recording will clone better")
        if max_seconds_per_clip and seconds > max_seconds_per_clip:
            warnings.append(
                f"{path.name} is {seconds:.0f} s long; only its first {max_seconds_per_clip:.0f} s are used"
            )
        clips.append(ClipReport(path, seconds, rate, channels))
    report = ReferenceReport(clips, warnings)
    if report.total_seconds < MIN_TOTAL_SECONDS:
        raise VoiceError(
            f"reference audio is {report.total_seconds:.1f} s in total; give at least {MIN_TOTAL_SECONDS:.0f} s "
            "(6-10 s of clear speech clones best)"
        )
    return report
