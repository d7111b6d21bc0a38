"""Signal helpers: short fades at seams so joined sentences do not click."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

FADE_SECONDS = 0.005


def _ramp(n: int) -> np.ndarray:
    """A linear fade-in over n samples (reversed, the fade-out): the one ramp every fade here uses."""
    return np.linspace(0.0, 1.0, n, dtype=np.float32)


def fade(chunk: np.ndarray, sample_rate: int, fade_in: bool, fade_out: bool) -> np.ndarray:
    """A copy of `chunk` with a few ms linear fade at its ends, so seams between sentences do not click."""
    n = min(int(sample_rate * FADE_SECONDS), len(chunk) // 2)
    out = np.array(chunk, dtype=np.float32, copy=True)
    if n > 0:
        ramp = _ramp(n)
        if fade_in:
            out[:n] *= ramp
        if fade_out:
            out[-n:] *= ramp[::-1]
    return out


class Fader:
    """One sentence's chunks as they come, the first faded in and the last faded out. Only the last few ms of the
    latest chunk are held back (the fade-out's span), until the next chunk shows they were not the sentence's end:
    the rest of each chunk is handed on at once. The samples are those of fading the first and last chunks whole."""

    def __init__(self, sample_rate: int) -> None:
        self.sample_rate = sample_rate
        self._span = int(sample_rate * FADE_SECONDS)
        self._held: np.ndarray | None = None  # the latest chunk's tail, not yet known not to end the sentence
        self._last = 0  # the latest chunk's length: the fade-out's span is fade()'s for that chunk
        self._first = True

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Take the next chunk; returns the audio now final (at most one array)."""
        if len(chunk) == 0:
            return []
        if self._first:
            chunk = fade(chunk, self.sample_rate, True, False)
            self._first = False
        keep = min(self._span, len(chunk))
        ready = chunk[: len(chunk) - keep]
        if self._held is not None:
            ready = np.concatenate([self._held, ready])
        self._held, self._last = np.array(chunk[len(chunk) - keep :], dtype=np.float32), len(chunk)
        return [ready] if len(ready) else []

    def finish(self) -> list[np.ndarray]:
        """The sentence ended: the held tail, faded out as fade() fades the last chunk."""
        held, self._held = self._held, None
        if held is None:
            return []
        n = min(self._span, self._last // 2)
        if n > 0:
            held[len(held) - n :] *= _ramp(n)[::-1]
        return [held]


def faded(chunks: Iterable[np.ndarray], sample_rate: int) -> Iterator[np.ndarray]:
    """Stream `chunks`, fading in the first and out the last, with one chunk of look-ahead."""
    fader = Fader(sample_rate)
    for chunk in chunks:
        yield from fader.push(chunk)
    yield from fader.finish()
