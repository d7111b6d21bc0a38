"""Reduced precision for XTTS's GPT: bf16/fp16 weights or int8 dynamic quantisation; the rest stays fp32."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

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


def apply_precision(model: Any, precision: str, device: str) -> None:
    """Turn the loaded Xtts's GPT transformer to `precision` in place (fp32 leaves it as it is)."""
    transformer = model.gpt.gpt
    if precision == "int8":
        if device.startswith("cuda"):
            raise ModelError("int8 runs on the CPU only", hint=Hint.DEVICE_CPU)
        _linear_from_conv1d(transformer)
        with warnings.catch_warnings():  # torch deprecates its quantized tensors; they still work, and say so each load
            warnings.filterwarnings("ignore", category=UserWarning, message=".*quantize")
            torch.ao.quantization.quantize_dynamic(transformer, {nn.Linear}, dtype=torch.qint8, inplace=True)
    elif precision in ("bf16", "fp16"):
        _half_transformer(transformer, torch.bfloat16 if precision == "bf16" else torch.float16)


def _linear_from_conv1d(module: nn.Module) -> None:
    """GPT-2's `Conv1D` (y = x W + b, W stored in x out) as `nn.Linear`, which dynamic quantisation knows."""
    from transformers.pytorch_utils import Conv1D

    for name, child in list(module.named_children()):
        if isinstance(child, Conv1D):
            n_in, n_out = child.weight.shape
            linear = nn.Linear(n_in, n_out, device=child.weight.device)
            with torch.no_grad():
                linear.weight.copy_(child.weight.t())
                linear.bias.copy_(child.bias)
            setattr(module, name, linear)
        else:
            _linear_from_conv1d(child)


def _half_transformer(transformer: nn.Module, dtype: torch.dtype) -> None:
    """Cast the transformer's weights to `dtype`; its inputs are cast on the way in and its outputs back to fp32,
    so the embeddings, final norm, heads and the HiFi-GAN decoder around it keep their fp32 weights."""
    transformer.to(dtype)
    positions: Any = transformer.wpe
    if not isinstance(positions, nn.Module):
        # coqui swaps GPT-2's position table for a function giving fp32 zeros, which would upcast every layer's input.
        vars(transformer)["wpe"] = lambda ids: positions(ids).to(dtype)  # a plain attribute, as coqui set it

    def cast_in(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        emb = kwargs.get("inputs_embeds")
        if emb is not None:
            kwargs["inputs_embeds"] = emb.to(dtype)
        return args, kwargs

    def cast_out(_module: nn.Module, _args: Any, _kwargs: Any, out: Any) -> Any:
        if isinstance(out, tuple):  # return_dict=False
            return (out[0].float(), *out[1:])
        out.last_hidden_state = out.last_hidden_state.float()
        if getattr(out, "hidden_states", None) is not None:
            out.hidden_states = tuple(h.float() for h in out.hidden_states)
        return out

    transformer.register_forward_pre_hook(cast_in, with_kwargs=True)
    transformer.register_forward_hook(cast_out, with_kwargs=True)


def quantized_layers(model: Any) -> int:
    """How many of the GPT's layers are dynamically quantised modules (0 unless precision is int8)."""
    from torch.ao.nn.quantized.dynamic import Linear as QLinear

    return sum(isinstance(m, QLinear) for m in model.gpt.gpt.modules())
