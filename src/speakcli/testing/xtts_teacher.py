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


def next_code_logits(model: Any, text_tokens: Any, cond_latent: Any, codes: Any) -> Any:
    """Logits [n, vocab] the GPT gives for each code of `codes` [n], fed the true codes before it (one pass)."""
    import torch

    gpt = model.gpt
    with torch.inference_mode():
        prompt = gpt.compute_embeddings(cond_latent, text_tokens)  # conditioning + text; ends with the start code
        ids = torch.cat([prompt, codes.reshape(1, -1).to(prompt.device)], dim=1)
        out = gpt.gpt_inference(input_ids=ids, use_cache=False, return_dict=True)
        first = prompt.shape[1] - 1  # the start code's position predicts codes[0]
        return out.logits[0, first : first + codes.numel()].float()


def agreement(reference: Any, model: Any, text_tokens: Any, cond_latent: Any, codes: Any) -> Agreement:
    """Feed the same text, conditioning latents and codes to `reference` and `model` (loaded Xtts objects)."""
    import torch

    ref = torch.log_softmax(next_code_logits(reference, text_tokens, cond_latent, codes), dim=-1)
    got = torch.log_softmax(next_code_logits(model, text_tokens, cond_latent, codes), dim=-1)
    top1 = (ref.argmax(-1) == got.argmax(-1)).float().mean().item()
    kl = (ref.exp() * (ref - got)).sum(-1).mean().item()
    return Agreement(top1=top1, kl=kl, positions=int(codes.numel()))


def sample_codes(model: Any, text_tokens: Any, cond_latent: Any, seed: int = 0) -> Any:
    """A code sequence [n] the model itself generates (coqui's sampling defaults), to force on every precision."""
    import torch

    torch.manual_seed(seed)
    with torch.inference_mode():
        codes = model.gpt.generate(
            cond_latents=cond_latent,
            text_inputs=text_tokens,
            do_sample=True,
            top_p=0.85,
            top_k=50,
            temperature=0.75,
            num_return_sequences=1,
            num_beams=1,
            length_penalty=1.0,
            repetition_penalty=10.0,
            output_attentions=False,
        )
    return codes[0]
