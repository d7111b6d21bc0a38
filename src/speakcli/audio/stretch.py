"""Time-stretching at the same pitch (WSOLA), and fitting audio to an exact length."""

from __future__ import annotations

import numpy as np

_FRAME_SECONDS = 0.030  # analysis window: a few pitch periods of speech
_SEEK_SECONDS = 0.010  # how far a frame may move to line up with the last: one low voice's pitch period
_COARSE = 4  # the search runs on every 4th sample first, then refines around the best lag


def fit_length(audio: np.ndarray, length: int) -> np.ndarray:
    """`audio` cut or padded with silence at its end to exactly `length` samples."""
    audio = np.asarray(audio, dtype=np.float32)
    if len(audio) >= length:
        return audio[:length]
    return np.concatenate([audio, np.zeros(length - len(audio), dtype=np.float32)])


def _best_lag(signal: np.ndarray, start: int, span: int, template: np.ndarray) -> int:
    """The offset in [0, span] at which `signal[start + offset:]` best matches `template` (normalised correlation)."""
    n = len(template)

    def scores(step: int, lags: np.ndarray) -> np.ndarray:
        t = template[::step]
        segs = np.stack([signal[start + lag : start + lag + n : step] for lag in lags])
        energy = np.sqrt(np.einsum("ij,ij->i", segs, segs)) + 1e-9
        return np.asarray((segs @ t) / energy)

    coarse = np.arange(0, span + 1, _COARSE)
    best = int(coarse[int(np.argmax(scores(_COARSE, coarse)))])
    fine = np.arange(max(0, best - _COARSE + 1), min(span, best + _COARSE - 1) + 1)
    return int(fine[int(np.argmax(scores(1, fine)))])


def stretch(audio: np.ndarray, length: int, rate: int) -> np.ndarray:
    """`audio` made `length` samples long at the same pitch: waveform-similarity overlap-add (WSOLA).

    Each output frame is taken from near where the rate puts it in the input, moved by up to a pitch period to
    continue the previous frame's waveform, and overlap-added under a Hann window; so speech keeps its pitch and
    has no clicks. The result is exactly `length` samples.
    """
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if length <= 0:
        return np.zeros(0, dtype=np.float32)
    if len(audio) == 0 or len(audio) == length:
        return fit_length(audio, length)
    frame = max(8, 2 * round(_FRAME_SECONDS * rate / 2))
    hop = frame // 2
    seek = max(1, round(_SEEK_SECONDS * rate))
    ratio = len(audio) / length  # input samples per output sample
    frames = -(-length // hop) + 1
    # Silence around the input: the first frame starts at 0, and every search window stays inside.
    pad = seek + frame
    padded = np.concatenate([np.zeros(pad, np.float32), audio, np.zeros(pad + frame + round(frames * hop * ratio))])
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(frame) / frame)).astype(np.float32)  # periodic: sums to 1
    out = np.zeros((frames + 1) * hop, dtype=np.float32)
    weight = np.zeros_like(out)
    previous = pad  # where the last frame was taken from, in `padded`
    for k in range(frames):
        if k == 0:
            at = pad
        else:
            nominal = pad + round(k * hop * ratio)
            template = padded[previous + hop : previous + hop + frame]  # what would follow the last frame
            at = nominal - seek + _best_lag(padded, nominal - seek, 2 * seek, template)
        out[k * hop : k * hop + frame] += padded[at : at + frame] * window
        weight[k * hop : k * hop + frame] += window
        previous = at
    made = out / np.maximum(weight, 1e-3)
    return made[:length].astype(np.float32)
