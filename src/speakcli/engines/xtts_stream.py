"""Linear-time XTTS streaming: GPT latents resampled and decoded as they arrive, each sample computed once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


class LinearStage:
    """`F.interpolate(x, scale_factor=scale, mode="linear")` over a sequence that arrives in pieces.

    An output frame is released once the input frames it blends are known for good (its right neighbour has
    arrived, or the input is complete); the input kept is only what later output frames still need, so the
    work per piece is bounded by the piece. Indices and weights follow PyTorch's CPU kernel (float32 source
    positions, clamped at both ends), so the result matches the one-piece call to rounding. That kernel copies
    its input when the output is as long (floor(n * scale) == n, which an upscale by less than 2 gives short
    inputs: under 1 / (scale - 1) frames), so nothing is released until the input is longer than that.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._step = np.float32(1.0 / scale)
        self._buf: torch.Tensor | None = None  # input frames [C, n] from absolute index _base
        self._base = 0
        self._n_in = 0
        self._out = 0
        self._done = False

    def _src(self, j: np.ndarray) -> np.ndarray:
        src = self._step * (j.astype(np.float32) + np.float32(0.5)) - np.float32(0.5)
        return np.maximum(src, np.float32(0.0))

    def push(self, x: torch.Tensor, final: bool = False) -> torch.Tensor:
        """Feed input frames [C, n]; return the output frames [C, m] now settled."""
        self._buf = x if self._buf is None else torch.cat([self._buf, x], dim=1)
        self._n_in += x.shape[1]
        self._done = final
        total = math.floor(float(self._n_in) * self.scale)
        if self._out == 0 and total == self._n_in:
            if not final:
                return x[:, :0]  # still short enough that the whole call would copy: wait
            self._out = total
            return self._buf
        j = np.arange(self._out, total)
        src = self._src(j)
        if not final:
            j, src = j[np.floor(src) <= self._n_in - 2], src[np.floor(src) <= self._n_in - 2]
        if j.size == 0:
            return x[:, :0]
        i0 = np.minimum(np.floor(src).astype(np.int64), self._n_in - 1)
        lam = np.clip(src - i0.astype(np.float32), 0.0, 1.0).astype(np.float32)
        i1 = np.where(i0 < self._n_in - 1, i0 + 1, i0)
        assert self._buf is not None
        dev = self._buf.device
        a = self._buf[:, torch.from_numpy(i0 - self._base).to(dev)]
        b = self._buf[:, torch.from_numpy(i1 - self._base).to(dev)]
        w1 = torch.from_numpy(lam).to(dev, self._buf.dtype)
        out = a * (1 - w1) + b * w1
        self._out = int(j[-1]) + 1
        # Keep only the inputs that the next output frame and those after it can still touch.
        keep = int(np.floor(self._src(np.array([self._out]))[0])) if not final else self._n_in
        keep = min(keep, self._n_in)
        self._buf = self._buf[:, keep - self._base :]
        self._base = keep
        return out


def decoded_samples(decoder: Any, latents: int) -> int:
    """The samples `latents` GPT latents decode to at speed 1.0: each resampling stage floors, as
    `F.interpolate` does, and HiFi-GAN makes `output_hop_length` samples a frame."""
    frames = math.floor(latents * (decoder.ar_mel_length_compression / decoder.output_hop_length))
    if decoder.output_sample_rate != decoder.input_sample_rate:
        frames = math.floor(frames * (decoder.output_sample_rate / decoder.input_sample_rate))
    return int(frames * decoder.output_hop_length)


def decode_whole(decoder: Any, latents: torch.Tensor, embedding: torch.Tensor) -> torch.Tensor:
    """coqui's HifiDecoder.forward (latents [1, n, C] resampled, then HiFi-GAN) with the generator's inputs in its
    own dtype, so a bf16 generator runs too; at fp32 the same operations as coqui's."""
    generator = decoder.waveform_decoder
    dtype = generator.conv_pre.weight.dtype
    z = F.interpolate(
        latents.transpose(1, 2),
        scale_factor=[decoder.ar_mel_length_compression / decoder.output_hop_length],
        mode="linear",
    )
    if decoder.output_sample_rate != decoder.input_sample_rate:
        z = F.interpolate(z, scale_factor=[decoder.output_sample_rate / decoder.input_sample_rate], mode="linear")
    return generator(z.to(dtype), g=embedding.to(dtype)).float()


class StreamDecoder:
    """XTTS's decoder (latent resampling, then HiFi-GAN) over GPT latents that arrive chunk by chunk.

    Both stages are streams (LinearStage, StreamingHifigan): every output sample is computed once, from the same
    inputs as in one whole decode, so the audio equals the one-piece decode of the same latents (to float
    rounding) whatever the chunking, needs no cross-fade, and each chunk costs time in proportion to its length.
    A chunk's last few frames wait for the next chunk (the decoder looks about 14 frames, 150 ms, ahead).
    """

    def __init__(self, decoder: Any, embedding: torch.Tensor, length_scale: float = 1.0):
        from speakcli.engines.xtts_hifigan_stream import StreamingHifigan

        self.hifigan = StreamingHifigan(decoder.waveform_decoder, embedding)
        # The same resampling chain as coqui: speed, then latent rate -> 22.05 kHz frames -> 24 kHz frames.
        scales = [] if length_scale == 1.0 else [length_scale]
        scales.append(decoder.ar_mel_length_compression / decoder.output_hop_length)
        if decoder.output_sample_rate != decoder.input_sample_rate:
            scales.append(decoder.output_sample_rate / decoder.input_sample_rate)
        self.stages = [LinearStage(s) for s in scales]
        self.work: list[int] = []  # input samples all HiFi-GAN layers read, each push (for tests)

    def push(self, latents: torch.Tensor, final: bool = False) -> np.ndarray:
        """Feed GPT latents [n, C] (the last call with final=True); return the audio now settled."""
        x = latents.transpose(0, 1)
        for stage in self.stages:
            x = stage.push(x, final)
        calls = len(self.hifigan.work)
        audio = self.hifigan.push(x[None], final)
        self.work.append(sum(self.hifigan.work[calls:]))
        return audio.reshape(-1).float().cpu().numpy()
