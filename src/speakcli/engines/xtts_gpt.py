"""XTTS's GPT-2 as a lean decode loop: packed weights, a preallocated KV cache and coqui's sampling, no HF generate."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


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
    16 GB/s here), and int8 goes through fbgemm's dynamic quantisation (weights per output channel, activations
    per call). `kind` says which path was taken.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, precision: str, device: str) -> None:
        self.dtype = compute_dtype(precision)
        self.bias = bias.to(device, self.dtype).contiguous()
        self.weight: Any
        if precision == "int8":
            if device != "cpu":
                raise ValueError("int8 runs on the CPU only")
            with warnings.catch_warnings():  # torch deprecates its quantized tensors; they still work, and say so
                warnings.simplefilter("ignore")
                scale = weight.abs().amax(dim=1).clamp_min(1e-12) / 127.0
                zero = torch.zeros_like(scale, dtype=torch.long)
                q = torch.quantize_per_channel(weight.float(), scale.double(), zero, 0, torch.qint8)
                self.weight = torch.ops.quantized.linear_prepack(q, self.bias)
            self.kind = "fbgemm int8"
        else:
            self.weight = weight.to(device, self.dtype).contiguous()
            self.kind = f"torch {precision}"
            if device == "cpu" and self.dtype != torch.float16 and _mkldnn_ok(self.dtype):
                self.weight = torch.ops.mkldnn._reorder_linear_weight(self.weight, 1)
                self.kind = f"onednn {precision}"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "fbgemm int8":
            # reduce_range: 7-bit activations, as torch's own dynamic Linear has it, so fbgemm's int16 sums of
            # products never saturate
            return torch.ops.quantized.linear_dynamic(x, self.weight, True)
        if self.kind.startswith("onednn"):
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return F.linear(x, self.weight, self.bias)


class _Block:
    """One GPT-2 block: the same arithmetic as transformers' GPT2Block in eval mode (pre-norm, gelu_new).

    The residual stream and the norms stay fp32 at every precision; only what goes through the linear layers and
    attention is in the compute dtype.
    """

    def __init__(self, block: Any, heads: int, precision: str, device: str) -> None:
        def lin(conv1d: Any) -> PackedLinear:  # GPT-2's Conv1D stores W as [in, out]
            return PackedLinear(conv1d.weight.detach().t(), conv1d.bias.detach(), precision, device)

        self.ln1, self.ln2 = _norm(block.ln_1), _norm(block.ln_2)
        self.qkv, self.proj = lin(block.attn.c_attn), lin(block.attn.c_proj)
        self.fc, self.out = lin(block.mlp.c_fc), lin(block.mlp.c_proj)
        self.heads = heads
        self.dtype = compute_dtype(precision)

    def __call__(self, x: torch.Tensor, cache: torch.Tensor, pos: int) -> torch.Tensor:
        """x [n, C] (fp32) at positions pos..pos+n-1; writes their keys and values into cache [2, 1, H, T, D].

        Written with narrow/view rather than indexing: a step runs this 30 times, and Python's slice indexing
        costs several dispatches each.
        """
        n, width = x.shape
        heads, head = self.heads, width // self.heads
        qkv = self.qkv(F.layer_norm(x, (width,), *self.ln1).to(self.dtype))
        cache.narrow(3, pos, n).copy_(qkv.narrow(1, width, 2 * width).view(n, 2, 1, heads, head).permute(1, 2, 3, 0, 4))
        kv = cache.narrow(3, 0, pos + n)
        q = qkv.narrow(1, 0, width).view(1, n, heads, head).transpose(1, 2)
        # a prefill at pos 0 is causal; a single new position sees every earlier one
        attn = F.scaled_dot_product_attention(q, kv[0], kv[1], is_causal=n > 1)
        x = x + self.proj(attn.transpose(1, 2).reshape(n, width))
        h = self.fc(F.layer_norm(x, (width,), *self.ln2).to(self.dtype))
        return x + self.out(F.gelu(h, approximate="tanh"))


def _norm(layer: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    return layer.weight.detach().float(), layer.bias.detach().float(), float(layer.eps)


class FastGpt:
    """The XTTS GPT's transformer rebuilt from coqui's loaded model, at a precision, for batch-one generation.

    It reads coqui's weights once (the transformer blocks, final norms, embeddings and mel head) and keeps its own
    copies in the layout the precision wants (`take` frees coqui's blocks as it goes). What it computes is
    coqui's `GPT2InferenceModel` step by step: the same embeddings and positions, the same logits, and latents
    equal to the ones coqui's second `gpt(..., return_latent=True)` pass recomputes, since the model is causal.
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

    def _run(self, x: torch.Tensor, caches: list[torch.Tensor], pos: int) -> torch.Tensor:
        """Hidden states [n, C] (after GPT-2's ln_f and coqui's final norm) of embeddings x [n, C] at `pos`."""
        for block, cache in zip(self.blocks, caches, strict=True):
            x = block(x, cache, pos)
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

    def generate(
        self,
        cond_latent: torch.Tensor,
        text_tokens: torch.Tensor,
        sampling: Sampling,
    ) -> Iterator[tuple[int, torch.Tensor]]:
        """(code, latent [C]) for each audio code in order, sampled as transformers' generate samples it for
        coqui (repetition penalty over every token id so far, then temperature, top-k, top-p, multinomial);
        the last is the stop code, or the limit is reached. Uses torch's global random generator, as coqui does."""
        from transformers.generation.logits_process import (
            LogitsProcessorList,
            RepetitionPenaltyLogitsProcessor,
            TemperatureLogitsWarper,
            TopKLogitsWarper,
            TopPLogitsWarper,
        )

        gpt = self.gpt
        limit = self.max_codes
        processors = LogitsProcessorList()
        if sampling.repetition_penalty != 1.0:
            processors.append(RepetitionPenaltyLogitsProcessor(sampling.repetition_penalty))
        if sampling.temperature != 1.0:
            processors.append(TemperatureLogitsWarper(sampling.temperature))
        processors.append(TopKLogitsWarper(top_k=sampling.top_k))
        if sampling.top_p < 1.0:
            processors.append(TopPLogitsWarper(top_p=sampling.top_p))

        prompt = self.prompt(cond_latent, text_tokens)
        start = torch.tensor([gpt.start_audio_token], device=prompt.device)
        x = torch.cat([prompt, self._code_embedding(start, 0)])
        caches = self._caches(x.shape[0] + limit)
        # transformers penalises repeats over the whole input_ids, which for coqui are the prompt's placeholder
        # ids (1), the start code and every code so far.
        ids = torch.full((1, x.shape[0] + limit), 1, dtype=torch.long, device=prompt.device)
        ids[0, x.shape[0] - 1] = gpt.start_audio_token
        pos, n = 0, x.shape[0]
        for i in range(limit):
            latent = self._run(x, caches, pos)[-1]
            pos += x.shape[0]
            scores = processors(ids[:, :n], self.head(latent[None]))  # type: ignore[arg-type]  # a LongTensor
            code = torch.multinomial(F.softmax(scores, dim=-1), num_samples=1)[0]
            ids[0, n] = code
            n += 1
            yield int(code), latent
            if int(code) == gpt.stop_audio_token:
                return
            x = self._code_embedding(code, i + 1)

    def logits(self, cond_latent: torch.Tensor, text_tokens: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Next-code logits [n, vocab] for each code of `codes` [n], fed the true codes before it, in one pass."""
        with torch.inference_mode():
            prompt = self.prompt(cond_latent, text_tokens)
            start = torch.tensor([self.gpt.start_audio_token], device=prompt.device)
            inputs = torch.cat([start, codes.reshape(-1)[:-1].to(prompt.device)])
            x = torch.cat([prompt, self._code_embedding(inputs, 0)])
            hidden = self._run(x, self._caches(x.shape[0]), 0)
            return self.head(hidden[prompt.shape[0] :])
