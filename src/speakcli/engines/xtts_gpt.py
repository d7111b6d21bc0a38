"""XTTS's GPT-2 as a lean decode loop: packed weights, a preallocated KV cache and coqui's sampling, no HF generate."""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PREFIX_BYTES = 64 * 2**20  # the voices' conditioning keys and values FastGpt keeps: 8 voices in fp32, 17 in bf16


@dataclass(frozen=True)
class Sampling:
    """coqui's sampling parameters (its inference defaults but the temperature, which speakcli exposes)."""

    temperature: float = 0.75
    top_k: int = 50
    top_p: float = 0.85
    repetition_penalty: float = 10.0


@functools.cache  # once per dtype, not once per layer
def _mkldnn_ok(dtype: torch.dtype) -> bool:
    """Whether oneDNN's packed linear runs here for `dtype` (an x86 or ARM CPU build of torch with oneDNN)."""
    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.zeros(8, 8, dtype=dtype), 1)
        torch.ops.mkldnn._linear_pointwise(torch.zeros(1, 8, dtype=dtype), w, None, "none", [], "")
    except (RuntimeError, AttributeError):
        return False
    return True


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype a precision's linear layers take and give (int8 quantises fp32 activations on the fly)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision, torch.float32)


class PackedLinear:
    """y = x W^T + b for x [n, in] -> [n, out] in `compute_dtype(precision)`, with W [out, in] at `precision`.

    At batch one a step reads every weight once, so its speed is memory bandwidth: on a CPU, oneDNN's packed
    layout reads fp32 and bf16 weights about 1.5-2x as fast as torch's plain matmul (measured 24-30 against
    16 GB/s here), and int8 goes through fbgemm's dynamic quantisation (weights per output channel). `kind` says
    which path was taken.

    int8 quantises each row of x on its own scale, so a row's result never depends on the other rows: fbgemm
    picks one scale for the whole input, so each row is first divided by its largest magnitude and two constant
    columns (+1, -1, against zero weights) pin every call's range to [-1, 1]. The integer products are then
    the same whatever rows share the call, and integer sums are exact: a sequence stepped in a batch gets the
    very bits it gets alone.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, precision: str, device: str) -> None:
        self.dtype = compute_dtype(precision)
        self.bias = bias.to(device, self.dtype).contiguous()
        self.weight: Any
        self.width = int(weight.shape[1])
        if precision == "int8":
            if device != "cpu":
                raise ValueError("int8 runs on the CPU only")
            pinned = torch.cat([weight.float(), weight.new_zeros(weight.shape[0], 2, dtype=torch.float32)], dim=1)
            with warnings.catch_warnings():  # torch deprecates its quantized tensors; they still work, and say so
                warnings.simplefilter("ignore")
                scale = pinned.abs().amax(dim=1).clamp_min(1e-12) / 127.0
                zero = torch.zeros_like(scale, dtype=torch.long)
                q = torch.quantize_per_channel(pinned, scale.double(), zero, 0, torch.qint8)
                self.weight = torch.ops.quantized.linear_prepack(q, None)
            self.kind = "fbgemm int8"
        else:
            self.weight = weight.to(device, self.dtype).contiguous()
            self.kind = f"torch {precision}"
            if device == "cpu" and self.dtype != torch.float16 and _mkldnn_ok(self.dtype):
                self.weight = torch.ops.mkldnn._reorder_linear_weight(self.weight, 1)
                self.kind = f"onednn {precision}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "fbgemm int8":
            return self._int8(x)
        if self.kind.startswith("onednn"):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)

    def _int8(self, x: torch.Tensor) -> torch.Tensor:
        n, width = x.shape
        peak = x.abs().amax(dim=1, keepdim=True).clamp_min(1e-30)
        rows = x.new_empty(n, width + 2)
        rows[:, width] = 1.0
        rows[:, width + 1] = -1.0
        torch.div(x, peak, out=rows[:, :width])
        # reduce_range: 7-bit activations, as torch's own dynamic Linear has it, so fbgemm's int16 sums of
        # products never saturate
        return torch.addcmul(self.bias, torch.ops.quantized.linear_dynamic(rows, self.weight, True), peak)


@dataclass(frozen=True)
class Span:
    """Rows of a step's input that belong to one sequence: `n` new positions from `pos`, with that sequence's
    per-block KV caches."""

    caches: list[torch.Tensor]
    pos: int
    n: int


class _Block:
    """One GPT-2 block: the same arithmetic as transformers' GPT2Block in eval mode (pre-norm, gelu_new).

    The residual stream and the norms stay fp32 at every precision; only what goes through the linear layers and
    attention is in the compute dtype. The rows of several sequences go through the linear layers together;
    attention runs per sequence, on its own cache.
    """

    def __init__(self, block: Any, heads: int, precision: str, device: str) -> None:
        def lin(conv1d: Any) -> PackedLinear:  # GPT-2's Conv1D stores W as [in, out]
            return PackedLinear(conv1d.weight.detach().t(), conv1d.bias.detach(), precision, device)

        self.ln1, self.ln2 = _norm(block.ln_1), _norm(block.ln_2)
        self.qkv, self.proj = lin(block.attn.c_attn), lin(block.attn.c_proj)
        self.fc, self.out = lin(block.mlp.c_fc), lin(block.mlp.c_proj)
        self.heads = heads
        self.dtype = compute_dtype(precision)

    def __call__(self, x: torch.Tensor, spans: list[Span], layer: int) -> torch.Tensor:
        """x [N, C] (fp32): each span's rows in order; writes their keys and values into the span's cache for this
        `layer` ([2, 1, H, T, D]).

        Written with narrow/view rather than indexing: a step runs this 30 times, and Python's slice indexing
        costs several dispatches each.
        """
        width = x.shape[1]
        qkv = self.qkv(F.layer_norm(x, (width,), *self.ln1).to(self.dtype))
        if len(spans) == 1:
            attn = self._attend(qkv, spans[0], layer)
        else:
            parts, at = [], 0
            for span in spans:
                parts.append(self._attend(qkv.narrow(0, at, span.n), span, layer))
                at += span.n
            attn = torch.cat(parts)
        x = x + self.proj(attn)
        h = self.fc(F.layer_norm(x, (width,), *self.ln2).to(self.dtype))
        return x + self.out(F.gelu(h, approximate="tanh"))

    def _attend(self, qkv: torch.Tensor, span: Span, layer: int) -> torch.Tensor:
        n, pos, cache = span.n, span.pos, span.caches[layer]
        width = qkv.shape[1] // 3
        heads, head = self.heads, width // self.heads
        cache.narrow(3, pos, n).copy_(qkv.narrow(1, width, 2 * width).view(n, 2, 1, heads, head).permute(1, 2, 3, 0, 4))
        kv = cache.narrow(3, 0, pos + n)
        q = qkv.narrow(1, 0, width).view(1, n, heads, head).transpose(1, 2)
        # a single new position sees every earlier one; several see the cache and, causally, each other
        if n == 1 or pos == 0:
            attn = F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=n > 1)
        else:
            mask = torch.ones(n, pos + n, dtype=torch.bool, device=qkv.device).tril(pos)
            attn = F.scaled_dot_product_attention(q, kv[0], kv[1], attn_mask=mask)
        return attn.transpose(1, 2).reshape(n, width)


def _norm(layer: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    return layer.weight.detach().float(), layer.bias.detach().float(), float(layer.eps)


class FastGpt:
    """The XTTS GPT's transformer rebuilt from coqui's loaded model, at a precision, stepping sequences together.

    It reads coqui's weights once (the transformer blocks, final norms, embeddings and mel head) and keeps its own
    copies in the layout the precision wants (`take` frees coqui's blocks as it goes). What it computes is
    coqui's `GPT2InferenceModel` step by step: the same embeddings and positions, the same logits, and latents
    equal to the ones coqui's second `gpt(..., return_latent=True)` pass recomputes, since the model is causal.

    `sequence` opens one utterance's generation and `step` advances several at once by one code each: one pass
    through the weights for all (a decode step is bound by reading them), attention per sequence on its own
    cache, and per-sequence sampling. `generate` is one sequence stepped alone.
    """

    def __init__(self, gpt: Any, precision: str, device: str, take: bool = False) -> None:
        config = gpt.gpt.config
        if (
            config.activation_function not in ("gelu_new", "gelu_pytorch_tanh")
            or config.scale_attn_by_inverse_layer_idx
            or config.reorder_and_upcast_attn
            or not config.scale_attn_weights
            or config.add_cross_attention
        ):
            raise ValueError("this GPT-2 is not configured as XTTS v2's (activation or attention scaling differs)")
        self.heads = int(config.n_head)
        self.width = int(config.n_embd)
        self.precision = precision
        self.device = device
        with torch.no_grad():
            self.blocks = []
            for i in range(len(gpt.gpt.h)):
                self.blocks.append(_Block(gpt.gpt.h[i], self.heads, precision, device))
                if take:  # free coqui's copy of each block once it is copied (about 1.5 GB for v2 in fp32)
                    gpt.gpt.h[i] = nn.Identity()
            if take:
                gpt.gpt.h = nn.ModuleList()
            self.ln_f = _norm(gpt.gpt.ln_f)
            self.final_norm = _norm(gpt.final_norm)
            self.head = PackedLinear(gpt.mel_head.weight.detach(), gpt.mel_head.bias.detach(), "fp32", device)
        self.gpt = gpt  # for the embeddings and token ids, which stay coqui's fp32 modules
        self.max_codes = int(gpt.max_gen_mel_tokens)
        self._prefixes: OrderedDict[bytes, list[torch.Tensor]] = OrderedDict()  # see _prefix

    def _run(self, x: torch.Tensor, spans: list[Span]) -> torch.Tensor:
        """Hidden states [N, C] (after GPT-2's ln_f and coqui's final norm) of embeddings x [N, C], the spans' rows."""
        for layer, block in enumerate(self.blocks):
            x = block(x, spans, layer)
        x = F.layer_norm(x, (self.width,), *self.ln_f)
        return F.layer_norm(x, (self.width,), *self.final_norm)

    def _caches(self, length: int) -> list[torch.Tensor]:
        """One [keys/values, 1, H, T, D] cache a block, for `length` positions, in the compute dtype."""
        shape = (2, 1, self.heads, length, self.width // self.heads)
        return [torch.empty(shape, device=self.device, dtype=compute_dtype(self.precision)) for _ in self.blocks]

    def prompt(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor) -> torch.Tensor:
        """[cond latents, start text, text, stop text] embedded, as coqui's compute_embeddings builds it: [P, C]."""
        gpt = self.gpt
        text = F.pad(F.pad(text_tokens, (0, 1), value=gpt.stop_text_token), (1, 0), value=gpt.start_text_token)
        emb = gpt.text_embedding(text) + gpt.text_pos_embedding(text)
        return torch.cat([cond_latent.to(emb.dtype), emb], dim=1)[0]

    def _code_embedding(self, codes: torch.Tensor, start: int) -> torch.Tensor:
        """Embeddings [n, C] of audio codes at audio positions start..start+n-1."""
        pos = self.gpt.mel_pos_embedding.emb(torch.arange(start, start + codes.numel(), device=codes.device))
        return self.gpt.mel_embedding(codes.reshape(-1)) + pos

    def _prefix(self, cond_latent: torch.Tensor) -> list[torch.Tensor]:
        """The keys and values of a voice's conditioning latents, the first rows of every prompt with that voice
        (one [2, 1, H, P, D] a block): computed once and reused by each sentence in that voice, about half of a
        short sentence's prompt. The model is causal, so the text rows after them never change them: a sentence
        gets what its whole prompt would give (bit for bit at int8, where each row is quantised on its own; to
        rounding at the float precisions, as in `step`). The latest voices are kept, up to PREFIX_BYTES (about 8 MB
        a voice in fp32, so 8 voices: int8's default batch on a CPU)."""
        rows = cond_latent[0].float()
        key = hashlib.blake2b(rows.cpu().contiguous().numpy().tobytes(), digest_size=16).digest()
        found = self._prefixes.get(key)
        if found is not None:
            self._prefixes.move_to_end(key)
            return found
        caches = self._caches(rows.shape[0])
        self._run(rows, [Span(caches, 0, rows.shape[0])])
        self._prefixes[key] = caches
        size = sum(c.numel() * c.element_size() for c in caches)
        while len(self._prefixes) > max(1, PREFIX_BYTES // size):
            self._prefixes.popitem(last=False)
        return caches

    def sequence(
        self,
        cond_latent: torch.Tensor,
        text_tokens: torch.Tensor,
        sampling: Sampling,
        generator: torch.Generator | None = None,
    ) -> GptSequence:
        """One utterance's generation, ready to `step` (its voice's prefix already in its caches); it samples with
        `generator` (None: torch's global one, as coqui does)."""
        prompt = self.prompt(cond_latent, text_tokens)
        start = torch.tensor([self.gpt.start_audio_token], device=prompt.device)
        x = torch.cat([prompt, self._code_embedding(start, 0)])
        return GptSequence(self, x, sampling, generator, self._prefix(cond_latent))

    def step(self, sequences: Sequence[GptSequence]) -> list[tuple[int, torch.Tensor]]:
        """Advance each sequence (none finished) by one code, in one pass: its (code, latent [C]), in order.

        A new sequence's first step runs its prompt (after its voice's cached rows); the others' rows join it in
        the same linear layers. No sequence's numbers depend on the others' (attention, the head and sampling run
        per sequence), so each gets what it would get stepped alone: bit for bit at int8 (see PackedLinear), to
        float rounding at the float precisions, whose matrix kernels round differently for different numbers of
        rows.
        """
        spans = [Span(seq.caches, seq.pos, seq.pending.shape[0]) for seq in sequences]
        x = sequences[0].pending if len(sequences) == 1 else torch.cat([seq.pending for seq in sequences])
        hidden = self._run(x, spans)
        out, at = [], 0
        for seq, span in zip(sequences, spans, strict=True):
            at += span.n
            latent = hidden[at - 1]
            # One row a call: the fp32 head's kernel rounds a lone row differently from a row among others.
            out.append((seq.sample(self.head(latent[None])), latent))
        return out

    def generate(
        self,
        cond_latent: torch.Tensor,
        text_tokens: torch.Tensor,
        sampling: Sampling,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(code, latent [C]) for each audio code in order, sampled as transformers' generate samples it for
        coqui (repetition penalty over every token id so far, then temperature, top-k, top-p, multinomial);
        the last is the stop code, or the limit is reached. Uses `generator`, else torch's global one, as coqui
        does."""
        seq = self.sequence(cond_latent, text_tokens, sampling, generator)
        while not seq.done:
            yield self.step([seq])[0]

    def logits(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Next-code logits [n, vocab] for each code of `codes` [n], fed the true codes before it, in one pass."""
        with torch.inference_mode():
            prompt = self.prompt(cond_latent, text_tokens)
            start = torch.tensor([self.gpt.start_audio_token], device=prompt.device)
            inputs = torch.cat([start, codes.reshape(-1)[:-1].to(prompt.device)])
            x = torch.cat([prompt, self._code_embedding(inputs, 0)])
            hidden = self._run(x, [Span(self._caches(x.shape[0]), 0, x.shape[0])])
            return self.head(hidden[prompt.shape[0] :])


class GptSequence:
    """One utterance being generated: its KV caches, position, the ids its repetition penalty covers, its sampling
    and random generator, and the rows its next step feeds (the prompt after its voice's `prefix` rows, whose
    keys and values are copied in, then the last code's embedding)."""

    def __init__(
        self,
        gpt: FastGpt,
        x: torch.Tensor,
        sampling: Sampling,
        generator: torch.Generator | None,
        prefix: list[torch.Tensor],
    ) -> None:
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        self.gpt = gpt
        self.limit = gpt.max_codes
        self.processors = LogitsProcessorList()
        if sampling.repetition_penalty != 1.0:
            self.processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
        if sampling.temperature != 1.0:
            self.processors.append(TemperatureLogitsWarper(sampling.temperature))
        self.processors.append(TopKLogitsWarper(top_k=sampling.top_k))
        if sampling.top_p < 1.0:
            self.processors.append(TopPLogitsWarper(top_p=sampling.top_p))
        self.generator = generator
        self.caches = gpt._caches(x.shape[0] + self.limit)
        known = prefix[0].shape[3]
        for cache, rows in zip(self.caches, prefix, strict=True):
            cache.narrow(3, 0, known).copy_(rows)
        self.pending = x[known:]
        # transformers penalises repeats over the whole input_ids, which for coqui are the prompt's placeholder
        # ids (1), the start code and every code so far.
        self.ids = torch.full((1, x.shape[0] + self.limit), 1, dtype=torch.long, device=x.device)
        self.ids[0, x.shape[0] - 1] = gpt.gpt.start_audio_token
        self.pos = known  # positions already in the caches
        self.n = x.shape[0]  # ids so far
        self.codes = 0  # codes sampled so far
        self.done = False

    def sample(self, logits: torch.Tensor) -> int:
        """The next code from this step's logits [1, vocab]; readies the next step's input, or ends the sequence."""
        self.pos += self.pending.shape[0]
        scores = self.processors(self.ids[:, : self.n], logits)  # type: ignore[arg-type]  # a LongTensor
        code = torch.multinomial(F.softmax(scores, dim=-1), num_samples=1, generator=self.generator)[0]
        self.ids[0, self.n] = code
        self.n += 1
        self.codes += 1
        value = int(code)
        if value == self.gpt.gpt.stop_audio_token or self.codes >= self.limit:
            self.done = True
            self.caches = []  # the memory goes with the sequence's end, not with its last reference
        else:
            self.pending = self.gpt._code_embedding(code, self.codes)
        return value
