"""Which precisions XTTS runs at (the GPT's, and the decoder's that follows from it), and what cannot run."""

from __future__ import annotations

import torch

from speakcli.errors import Hint, ModelError


def resolve_precision(requested: str, device: str) -> str:
    """The precision `requested` means on `device` (auto, cpu, cuda...): auto is fp32 on a CPU, bf16 (else fp16)
    on CUDA."""
    if requested != "auto":
        return requested
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not device.startswith("cuda"):
        # Random weights are only a proxy: keep fp32 until someone measures bf16/int8 with the real weights.
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def check_precision(precision: str, device: str) -> None:
    """Refuse what this build cannot run, before the model is read: int8 (fbgemm) is CPU-only."""
    if precision == "int8" and device != "cpu":
        raise ModelError("int8 runs on the CPU only", hint=Hint.DEVICE_CPU)


def default_max_batch(device: str, precision: str) -> int:
    """How many sentences an XTTS step takes by default. A decode step reads every weight once whatever the rows:
    on a CPU at int8 a step for 8 cost 1.2 steps for one on an AVX2 machine and 2-2.8 on an AVX-512 one (per-sentence
    attention and sampling), while fp32 and bf16 pay more per extra row there; a GPU stays bound by memory far
    longer."""
    if device.startswith("cuda"):
        return 16
    return 8 if precision == "int8" else 4


def native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX), asked of the machine, never assumed: on
    an AVX2-only CPU bf16 arithmetic is emulated and slower than fp32."""
    # torch's own probes (cpuinfo) are private: a torch without them means no bf16 decoder, not an error.
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def decoder_precision(precision: str, device: str) -> str:
    """The HiFi-GAN decoder's precision at GPT precision `precision` on `device`: bf16 where the user has already
    traded exactness for speed (bf16 or int8) and the CPU computes bf16 natively (there it takes 0.56-0.58x the
    time, at about 41 dB SNR against fp32 on the random model); fp32 everywhere else, so --precision fp32 stays
    exact."""
    if device == "cpu" and precision in ("bf16", "int8") and native_bf16():
        return "bf16"
    return "fp32"
