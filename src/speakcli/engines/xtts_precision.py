"""Which precision XTTS's GPT runs at: auto resolved per device, and the combinations that cannot run refused."""

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
