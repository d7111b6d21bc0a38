"""Teacher-forced faithfulness of a reduced-precision XTTS GPT: next-code top-1 agreement and KL against fp32."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Agreement:
    """How closely a model's next-code distributions follow the reference's over one forced code sequence."""

    top1: float  # fraction of positions where both put the most probability on the same code
    kl: float  # mean KL(reference || model) in nats per position
    positions: int


def coqui_logits(model: Any, text_tokens: Any, cond_latent: Any, codes: Any) -> Any:
    """Logits [n, vocab] coqui's own GPT (transformers' GPT-2) gives each code of `codes` [n], fed the true codes
    before it, in one pass: the reference FastGpt is held to."""
    import torch

    gpt = model.gpt
    with torch.inference_mode():
        prompt = gpt.compute_embeddings(cond_latent, text_tokens)  # conditioning + text; ends with the start code
        ids = torch.cat([prompt, codes.reshape(1, -1)[:, :-1].to(prompt.device)], dim=1)
        out = gpt.gpt_inference(input_ids=ids, use_cache=False, return_dict=True)
        first = prompt.shape[1] - 1  # the start code's position predicts codes[0]
        return out.logits[0, first:].float()


def agreement(reference: Any, got: Any) -> Agreement:
    """Compare two models' logits [n, vocab] for the same forced positions (from `coqui_logits`, `FastGpt.logits`)."""
    import torch

    ref = torch.log_softmax(reference.float(), dim=-1)
    out = torch.log_softmax(got.float(), dim=-1)
    top1 = (ref.argmax(-1) == out.argmax(-1)).float().mean().item()
    kl = (ref.exp() * (ref - out)).sum(-1).mean().item()
    return Agreement(top1=top1, kl=kl, positions=int(ref.shape[0]))


def sample_codes(gpt: Any, text_tokens: Any, cond_latent: Any, seed: int = 0) -> Any:
    """A code sequence [n] a FastGpt generates with coqui's sampling defaults, to force on every precision."""
    import torch

    from speakcli.engines.xtts_gpt import Sampling

    torch.manual_seed(seed)
    with torch.inference_mode():
        return torch.tensor([code for code, _ in gpt.generate(cond_latent, text_tokens, Sampling())])
