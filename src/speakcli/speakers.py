"""Speaker latents as coqui's streaming-server API sends and takes them: JSON numbers, checked; never a pickle."""

from __future__ import annotations

from typing import Any

import numpy as np

from speakcli.engines.base import SpeakerLatents
from speakcli.errors import LimitError, UsageError

# Twice XTTS v2's own (32 x 1024 and 512): room for other models, and a bound on what one request holds.
MAX_ROWS = 64
MAX_WIDTH = 2048
MAX_DIM = 2048
# coqui's server sends latents as float16 (`.half().tolist()`): anything larger never came from a model.
MAX_MAGNITUDE = 65504.0


def _numbers(value: Any, name: str, limit: int) -> list[Any]:
    """`value` as a list of at most `limit` plain JSON numbers (no booleans, strings or nulls)."""
    if not isinstance(value, list) or not value:
        raise UsageError(f"{name} must be a non-empty list of numbers")
    if len(value) > limit:
        raise LimitError(f"{name} has {len(value)} values; at most {limit} are taken")
    if not all(type(x) is float or type(x) is int for x in value):  # bool is an int subclass: not by `type`
        raise UsageError(f"{name} must hold numbers only")
    return value


def _checked(values: np.ndarray, name: str) -> np.ndarray:
    if not np.isfinite(values).all() or float(np.abs(values).max()) > MAX_MAGNITUDE:
        raise UsageError(f"{name} must hold finite numbers of magnitude at most {MAX_MAGNITUDE:g}")
    return values


def latents_from_json(gpt_cond_latent: Any, speaker_embedding: Any) -> SpeakerLatents:
    """Latents a client sent, as coqui's server sends them (`gpt_cond_latent` a list of rows, `speaker_embedding`
    a list), checked: numbers only, a rectangle, within the size limits, finite. The engine checks the shape its
    model takes (`check_voice`). Raises UsageError (LimitError past a limit)."""
    if not isinstance(gpt_cond_latent, list) or not gpt_cond_latent:
        raise UsageError("gpt_cond_latent must be a non-empty list of rows of numbers")
    if len(gpt_cond_latent) > MAX_ROWS:
        raise LimitError(f"gpt_cond_latent has {len(gpt_cond_latent)} rows; at most {MAX_ROWS} are taken")
    rows = [_numbers(row, "each row of gpt_cond_latent", MAX_WIDTH) for row in gpt_cond_latent]
    if len({len(row) for row in rows}) != 1:
        raise UsageError("gpt_cond_latent's rows must all have the same length")
    latent = _checked(np.asarray(rows, dtype=np.float32), "gpt_cond_latent")
    embedding = _checked(
        np.asarray(_numbers(speaker_embedding, "speaker_embedding", MAX_DIM), np.float32), "speaker_embedding"
    )
    return SpeakerLatents(latent[None, :, :], embedding[None, :, None])


def latents_to_json(latents: SpeakerLatents) -> dict[str, Any]:
    """The JSON coqui's server answers with: both arrays squeezed, rounded to float16 as it rounds them."""
    return {
        "gpt_cond_latent": latents.gpt_cond_latent.reshape(-1, latents.gpt_cond_latent.shape[-1])
        .astype(np.float16)
        .tolist(),
        "speaker_embedding": latents.speaker_embedding.reshape(-1).astype(np.float16).tolist(),
    }
