"""Synthetic clips for tests and benchmarks: pure tones and voiced-like signals, in memory or written to a file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def tone(seconds: float = 0.5, rate: int = 24000, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    """A pure sine, float32 mono."""
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def voiced(
    seconds: float = 3.0,
    rate: int = 22050,
    *,
    channels: int = 1,
    f0: float = 140.0,
    amplitude: float = 0.3,
    floor: float = 1.0,
    depth: float = 0.5,
    wobble_hz: float = 3.0,
    noise: float = 0.02,
    seed: int = 0,
) -> np.ndarray:
    """A voiced-like float32 signal: a pitch whose loudness swings (floor + depth * sine) at a syllable rate, over
    a little noise, so reference checks (silence, clipping, length) see speech-like audio; (frames, channels) if
    channels > 1."""
    t = np.arange(int(seconds * rate)) / rate
    sig = amplitude * np.sin(2 * np.pi * f0 * t) * (floor + depth * np.sin(2 * np.pi * wobble_hz * t))
    sig = sig + noise * np.random.default_rng(seed).standard_normal(len(t))
    data = np.stack([sig] * channels, axis=1) if channels > 1 else sig
    return data.astype(np.float32)


def write_clip(path: Path, data: np.ndarray, rate: int, **sf_options: Any) -> Path:
    """Write `data` to `path` (format from the suffix, or `format=`/`subtype=` for soundfile) and return the path."""
    import soundfile as sf

    sf.write(path, data, rate, **sf_options)
    return path


def speech_like_wav(
    path: Path,
    seconds: float = 3.0,
    rate: int = 22050,
    *,
    channels: int = 1,
    seed: int = 0,
    amplitude: float = 0.3,
    **sf_options: Any,
) -> Path:
    """Write a voiced-like clip whose pitch follows `seed` (110 Hz + 40 Hz a seed, so clips of one voice differ) to
    `path`: the format from the suffix, or soundfile's `format=`/`subtype=`."""
    data = voiced(
        seconds,
        rate,
        channels=channels,
        f0=110 + 40 * seed,
        amplitude=amplitude,
        floor=0.6,
        depth=0.4,
        wobble_hz=4.0,
        noise=0.01,
        seed=seed,
    )
    return write_clip(path, data, rate, **sf_options)
