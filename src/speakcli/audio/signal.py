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


class Fader:
    """One sentence's chunks as they come, the first faded in and the last faded out: one chunk is held back until
    the next shows it was not the last."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._pending: np.ndarray | None = None
        self._first = True

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Take the next chunk; returns the chunks now final (at most one)."""
        if len(chunk) == 0:
            return []
        out = []
        if self._pending is not None:
            out.append(fade(self._pending, self.sample_rate, True, False) if self._first else self._pending)
            self._first = False
        self._pending = chunk
        return out

    def finish(self) -> list[np.ndarray]:
        """The sentence ended: the chunk held back, faded out."""
        pending, self._pending = self._pending, None
        return [] if pending is None else [fade(pending, self.sample_rate, self._first, True)]


def faded(chunks: Iterable[np.ndarray], sample_rate: int) -> Iterator[np.ndarray]:
    """Stream `chunks`, fading in the first and out the last, with one chunk of look-ahead."""
    fader = Fader(sample_rate)
    for chunk in chunks:
        yield from fader.push(chunk)
    yield from fader.finish()
