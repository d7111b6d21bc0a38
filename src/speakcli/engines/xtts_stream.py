"""Linear-time XTTS streaming: GPT latents in chunks, each decoded with a bounded context and joined by a cross-fade."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

FADE_SAMPLES = 256  # one decoder frame (~11 ms at 24 kHz): short enough to be inaudible, long enough not to click


def receptive_frames(generator: Any) -> int:
    """How many input frames either side of a frame can change its output samples, from the decoder's layers.

    HiFi-GAN is non-causal: every convolution looks (dilation * (kernel - 1) / 2) samples each way at its own
    rate, and a transposed convolution with kernel k and stride u looks k / u input samples wide. Summed in
    input-frame units over conv_pre, each upsampling stage (its widest parallel residual block) and conv_post,
    XTTS v2's decoder (upsampling 8, 8, 2, 2; kernels 3, 7, 11 with dilations 1, 3, 5) gets 14.45 frames
    (a one-frame change moves samples 12.6 frames before to 13.6 after it), so 15 frames (160 ms) of context
    on each side of a chunk give the same samples as one whole decode.
    """
    rate = 1  # output samples per input frame at the current layer
    half = _conv_half(generator.conv_pre) / rate
    kernels = generator.num_kernels
    for i, up in enumerate(generator.ups):
        half += math.ceil(up.kernel_size[0] / up.stride[0]) / rate
        rate *= up.stride[0]
        blocks = generator.resblocks[i * kernels : (i + 1) * kernels]
        widest = max(sum(_conv_half(c) for c in b.modules() if isinstance(c, torch.nn.Conv1d)) for b in blocks)
        half += widest / rate
    half += _conv_half(generator.conv_post) / rate
    return math.ceil(half)


def _conv_half(conv: Any) -> float:
    return float(conv.dilation[0] * (conv.kernel_size[0] - 1) / 2)


def samples_per_frame(generator: Any) -> int:
    return math.prod(up.stride[0] for up in generator.ups)


class LinearStage:
    """`F.interpolate(x, scale_factor=scale, mode="linear")` over a sequence that arrives in pieces.

    An output frame is released once the input frames it blends are known for good (its right neighbour has
    arrived, or the input is complete); the input kept is only what later output frames still need, so the
    work per piece is bounded by the piece. Indices and weights follow PyTorch's CPU kernel (float32 source
    positions, clamped at both ends), so the result matches the one-piece call to rounding.
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
        if self._n_in == 0:
            return x[:, :0]
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


class StreamDecoder:
    """HiFi-GAN decoding of GPT latents chunk by chunk, in time linear in the utterance's length.

    Each push decodes only the new frames plus `context` frames of left context (the frames already sent)
    and holds back the last `context` frames as right context for the next push, so every sample sent was
    decoded with the decoder's whole receptive field around it: the audio equals the one-piece decode of
    the same latents, whatever the chunking. A FADE_SAMPLES cross-fade joins the pieces. Total samples
    equal the one-piece decode's.
    """

    def __init__(self, decoder: Any, embedding: torch.Tensor, length_scale: float = 1.0, context: int | None = None):
        self.decoder = decoder
        self.g = embedding
        gen = decoder.waveform_decoder
        self.context = receptive_frames(gen) if context is None else context
        self.hop = samples_per_frame(gen)
        self.fade = min(FADE_SAMPLES, self.context * self.hop)
        # The same resampling chain as coqui: speed, then latent rate -> 22.05 kHz frames -> 24 kHz frames.
        scales = [] if length_scale == 1.0 else [length_scale]
        scales.append(decoder.ar_mel_length_compression / decoder.output_hop_length)
        if decoder.output_sample_rate != decoder.input_sample_rate:
            scales.append(decoder.output_sample_rate / decoder.input_sample_rate)
        self.stages = [LinearStage(s) for s in scales]
        self._z: torch.Tensor | None = None  # settled decoder input frames [C, n] from absolute index _zbase
        self._zbase = 0
        self._zn = 0
        self._sent = 0  # frames whose samples have been sent
        self._tail: torch.Tensor | None = None  # provisional samples after _sent, to be cross-faded
        self.decoded_lengths: list[int] = []  # decoder input length of each call (for tests: bounded per chunk)

    def push(self, latents: torch.Tensor, final: bool = False) -> np.ndarray:
        """Feed GPT latents [n, C] (the last call with final=True); return the audio now settled."""
        x = latents.transpose(0, 1)
        for stage in self.stages:
            x = stage.push(x, final)
        self._z = x if self._z is None else torch.cat([self._z, x], dim=1)
        self._zn += x.shape[1]
        end = self._zn if final else self._zn - self.context
        if end <= self._sent:
            return np.zeros(0, dtype=np.float32)
        start = max(0, self._sent - self.context)
        assert self._z is not None
        z = self._z[:, start - self._zbase :]
        self.decoded_lengths.append(z.shape[1])
        wav = self.decoder.waveform_decoder(z[None], g=self.g).reshape(-1)
        first = (self._sent - start) * self.hop
        stop = (end - start) * self.hop
        out = wav[first:stop].clone()
        if self._tail is not None:
            n = self._tail.shape[0]
            ramp = torch.linspace(0.0, 1.0, n, device=out.device, dtype=out.dtype)
            out[:n] = self._tail * (1 - ramp) + out[:n] * ramp
        self._tail = None if final else wav[stop : stop + self.fade].clone()
        self._sent = end
        keep = max(0, end - self.context)
        self._z = self._z[:, keep - self._zbase :]
        self._zbase = keep
        return out.float().cpu().numpy()
