"""coqui's HiFi-GAN generator run as a stream: each layer keeps only the samples its next outputs still need."""

from __future__ import annotations

from typing import Any, Protocol

import torch
import torch.nn.functional as F

LRELU_SLOPE = 0.1  # coqui's hifigan_generator.LRELU_SLOPE; its last leaky ReLU uses torch's default, 0.01


class _Op(Protocol):
    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        """Feed the next samples [1, C, n] (final: the last); return the next outputs now settled, in order."""
        ...


class _Conv:
    """A same-padded, stride-1 Conv1d: output t waits for input t + pad; the left zeros come first, the right
    zeros with the final push."""

    def __init__(self, conv: Any, work: list[int]) -> None:
        kernel, dilation = conv.kernel_size[0], conv.dilation[0]
        self.pad = int(conv.padding[0])
        if conv.stride[0] != 1 or 2 * self.pad != dilation * (kernel - 1):
            raise ValueError("a streamed Conv1d must be stride 1 and 'same' padded")
        self.conv, self.span, self.work = conv, dilation * (kernel - 1), work
        self.buf: torch.Tensor | None = None

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        buf = F.pad(x, (self.pad, 0)) if self.buf is None else torch.cat([self.buf, x], dim=-1)
        if final:
            buf = F.pad(buf, (0, self.pad))
        ready = buf.shape[-1] - self.span
        if ready <= 0:
            self.buf = buf
            return x.new_zeros(1, self.conv.out_channels, 0)
        c = self.conv
        out = F.conv1d(buf, c.weight, c.bias, 1, 0, c.dilation)
        self.buf = buf[..., ready:]
        self.work.append(buf.shape[-1])
        return out


class _ConvT:
    """A ConvTranspose1d (stride s, kernel k, padding p): full-output sample j sums inputs i with
    i*s <= j < i*s + k, so it is settled once input j // s has arrived; the first and last p are cropped."""

    def __init__(self, conv: Any, work: list[int]) -> None:
        self.s, self.k, self.p = conv.stride[0], conv.kernel_size[0], int(conv.padding[0])
        if conv.output_padding[0] != 0 or conv.dilation[0] != 1 or self.k - self.p < self.s:
            raise ValueError("unexpected ConvTranspose1d geometry for streaming")
        self.conv, self.work = conv, work
        self.buf: torch.Tensor | None = None
        self.first = 0  # absolute index of buf's first input
        self.n_in = 0
        self.done = 0  # full-output samples already settled

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        self.buf = x if self.buf is None else torch.cat([self.buf, x], dim=-1)
        self.n_in += x.shape[-1]
        # Settled: everything before input n_in's first sample; at the end, all but the cropped last p.
        end = (self.n_in - 1) * self.s + self.k - self.p if final else self.n_in * self.s
        start = max(self.done, self.p)
        if self.n_in == 0 or end <= start:
            return x.new_zeros(1, self.conv.out_channels, 0)
        c = self.conv
        full = F.conv_transpose1d(self.buf, c.weight, c.bias, self.s, 0)  # covers [first*s, (n_in-1)*s + k)
        out = full[..., start - self.first * self.s : end - self.first * self.s]
        self.done = end
        self.work.append(self.buf.shape[-1])
        # Keep the inputs that still reach unsettled samples: i*s + k > done.
        keep = max(self.first, -(-(self.done - self.k + 1) // self.s))
        self.buf = self.buf[..., keep - self.first :]
        self.first = keep
        return out


class _Map:
    """A pointwise step (an activation, adding the speaker's constant conditioning)."""

    def __init__(self, fn: Any) -> None:
        self.fn = fn

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        return self.fn(x)


class _Chain:
    def __init__(self, ops: list[_Op]) -> None:
        self.ops = ops

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        for op in self.ops:
            x = op.push(x, final)
        return x


class _Residual:
    """x + inner(x), with x held back until inner's output for the same samples is out."""

    def __init__(self, inner: _Op) -> None:
        self.inner = inner
        self.held: torch.Tensor | None = None

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        self.held = x if self.held is None else torch.cat([self.held, x], dim=-1)
        y = self.inner.push(x, final)
        n = y.shape[-1]
        out = y + self.held[..., :n]
        self.held = self.held[..., n:]
        return out


class _Mean:
    """The mean of parallel branches (coqui's multi-receptive-field fusion), as far as all of them have got."""

    def __init__(self, branches: list[_Op]) -> None:
        self.branches = branches
        self.pending: list[torch.Tensor | None] = [None] * len(branches)

    def push(self, x: torch.Tensor, final: bool) -> torch.Tensor:
        for i, branch in enumerate(self.branches):
            y = branch.push(x, final)
            old = self.pending[i]
            self.pending[i] = y if old is None else torch.cat([old, y], dim=-1)
        ready = min(p.shape[-1] for p in self.pending if p is not None)
        total = None
        for i, p in enumerate(self.pending):
            assert p is not None
            total = p[..., :ready].clone() if total is None else total.add_(p[..., :ready])  # coqui's order
            self.pending[i] = p[..., ready:]
        assert total is not None
        return total / len(self.branches)


def _resblock(block: Any, work: list[int]) -> _Op:
    """coqui's ResBlock1 (pairs of dilated and plain convolutions) or ResBlock2 (single convolutions)."""
    steps: list[_Op] = []
    lrelu = _Map(lambda x: F.leaky_relu(x, LRELU_SLOPE))
    if hasattr(block, "convs1"):
        for c1, c2 in zip(block.convs1, block.convs2, strict=True):
            steps.append(_Residual(_Chain([lrelu, _Conv(c1, work), lrelu, _Conv(c2, work)])))
    else:
        steps.extend(_Residual(_Chain([lrelu, _Conv(c, work)])) for c in block.convs)
    return _Chain(steps)


class StreamingHifigan:
    """coqui's HifiganGenerator.forward(z, g) over z arriving in pieces [1, C, n]: the concatenated outputs equal
    the one-piece output to float rounding, and a piece costs work in proportion to its own length (each layer
    recomputes nothing, keeping at most its kernel's span of inputs). `work` counts the input samples each layer
    call reads, for tests."""

    def __init__(self, generator: Any, g: torch.Tensor) -> None:
        if hasattr(generator, "lin_pre"):
            raise ValueError("a HiFi-GAN with lin_pre is not XTTS's decoder")
        self.work: list[int] = []
        self.dtype = generator.conv_pre.weight.dtype  # the engine may hold the generator in bf16
        g = g.to(self.dtype)
        ops: list[_Op] = [_Conv(generator.conv_pre, self.work)]
        if hasattr(generator, "cond_layer"):
            cond = generator.cond_layer(g)
            ops.append(_Map(lambda x: x + cond))
        kernels = generator.num_kernels
        for i, up in enumerate(generator.ups):
            ops += [_Map(lambda x: F.leaky_relu(x, LRELU_SLOPE)), _ConvT(up, self.work)]
            if generator.cond_in_each_up_layer:
                ops.append(_Map(lambda x, c=generator.conds[i](g): x + c))
            ops.append(_Mean([_resblock(b, self.work) for b in generator.resblocks[i * kernels : (i + 1) * kernels]]))
        ops += [_Map(F.leaky_relu), _Conv(generator.conv_post, self.work), _Map(torch.tanh)]
        self.net = _Chain(ops)

    def push(self, z: torch.Tensor, final: bool = False) -> torch.Tensor:
        """Feed decoder input frames [1, C, n]; return the audio samples [1, 1, m] now settled (in the generator's
        dtype)."""
        return self.net.push(z.to(self.dtype), final)
