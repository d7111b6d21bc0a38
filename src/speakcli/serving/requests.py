"""What a server front end hands the core: a speech request, a clip upload, and the limits they are held to."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from speakcli.engines.base import SpeakerLatents
from speakcli.errors import UsageError


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; a server refuses more with a `LimitError` or, when full, a `BusyError`."""

    max_queue: int = 32  # requests waiting behind the one being made
    max_text: int = 4096  # characters of text per request (OpenAI's limit)
    max_upload_bytes: int = 20 * 1024 * 1024  # per clip
    max_clips: int = 8
    max_batch_items: int = 10_000
    max_batch_jobs: int = 4  # batch jobs running at once; each puts at most one item ahead of a request
    max_kept_jobs: int = 100  # finished batch jobs remembered (with their files) before the oldest goes


@dataclass(frozen=True)
class SpeechRequest:
    """One synthesis as a front end received it; `voice` is only ever a name, never a path, or the voice is given
    as `latents` (already checked by `speakcli.speakers.latents_from_json`)."""

    text: str
    voice: str | None = None
    language: str | None = None
    speed: float | None = None
    temperature: float | None = None
    seed: int | None = None  # XTTS sampling's seed: the same request and seed say the same
    latents: SpeakerLatents | None = None
    # The text is a stream's sentences, already made speakable (Markdown read aloud, the lexicon).
    prepared: bool = False
    # XTTS's sampling beyond the temperature (xtts-api-server's settings); None: coqui's defaults.
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None


def check_speed(speed: float) -> None:
    """A request's speed, as every front end checks it."""
    if not 0.25 <= speed <= 4.0:
        raise UsageError(f"speed {speed} is out of range; use 0.25 to 4")


def check_temperature(temperature: float) -> None:
    """A request's temperature, as every front end checks it."""
    if not 0.0 < temperature <= 2.0:
        raise UsageError(f"temperature {temperature} is out of range; use above 0 and at most 2")


def check_sampling(top_k: int | None, top_p: float | None, repetition_penalty: float | None) -> None:
    """A request's XTTS sampling settings, as every front end checks them (None: coqui's default)."""
    if top_k is not None and not 1 <= top_k <= 1000:
        raise UsageError(f"top_k {top_k} is out of range; use 1 to 1000")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise UsageError(f"top_p {top_p} is out of range; use above 0 and at most 1")
    if repetition_penalty is not None and not (math.isfinite(repetition_penalty) and repetition_penalty > 0):
        raise UsageError(f"repetition_penalty {repetition_penalty} is out of range; use a number above 0")


@dataclass(frozen=True)
class Upload:
    """A reference clip a client sent: its file name as sent (made safe, it names the clip) and its bytes."""

    filename: str
    data: bytes


def upload_name(filename: str, index: int, taken: set[str]) -> str:
    """A safe file name for the `index`th uploaded clip: the client's own base name, or `clip-N` when it gave none.

    Letters, digits, spaces, '.', '_' and '-' only, no leading dot, at most 120 bytes, not one in `taken`: one
    plain file in a private folder, which error messages and the saved voice show as the client named it.
    """
    base = re.sub(r"[^\w .-]", "_", filename.replace("\\", "/").rsplit("/", 1)[-1]).strip(" .")
    suffix = Path(base).suffix[:16]
    stem = base[: len(base) - len(suffix)] if suffix else base
    while stem and len((stem + suffix).encode()) > 120:
        stem = stem[:-1]
    stem = stem or f"clip-{index + 1}"
    name, n = stem + suffix, 1
    while name in taken:  # the same name twice: a-2.wav, as batch names do
        n += 1
        name = f"{stem}-{n}{suffix}"
    return name
