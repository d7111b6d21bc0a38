"""Signal helpers: short fades at seams so joined sentences do not click."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

FADE_SECONDS = 0.005


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
