"""The engine Protocol every synthesis backend implements, and the value types it takes."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class SynthesisOptions:
    """Per-utterance knobs; engines ignore what they do not support (Piper has no temperature)."""

    language: str = "en"
    speed: float = 1.0
    temperature: float = 0.75
    pause: float = 0.2
    # Yield audio as it is generated (for playback); off, an engine may make each sentence in one piece
    # (for XTTS the same audio, a few per cent sooner: one decoder call instead of one per layer and chunk).
    stream: bool = True
    # Seeds the engine's sampling for this text (XTTS), so the same request says the same thing however it is
    # scheduled; None: the engine's shared random generator.
    seed: int | None = None
    # XTTS's sampling beyond the temperature; None: coqui's defaults (top-k 50, top-p 0.85, repetition penalty 10).
    top_k: int | None = None
    top_p: float | None = None
    repetition_penalty: float | None = None

    @property
    def gap(self) -> float:
        """Seconds of silence between sentences: `pause` at the utterance's rate (speed 2 halves it too)."""
        return self.pause / self.speed


@dataclass(frozen=True, eq=False)
class SpeakerLatents:
    """A speaker as XTTS conditions on it: `gpt_cond_latent` [1, rows, width] and `speaker_embedding` [1, dim, 1],
    float32. Compared by identity: two sets of numbers are one voice only when they are the same object."""

    gpt_cond_latent: np.ndarray
    speaker_embedding: np.ndarray


@dataclass(frozen=True)
class Voice:
    """A resolved voice: an engine's built-in speaker, reference clips to clone from, or a client's latents."""

    name: str
    clips: tuple[Path, ...] = ()
    speaker: str | None = None
    language: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    latents: SpeakerLatents | None = None  # given as numbers (coqui's streaming-server API), not computed here

    @property
    def is_clone(self) -> bool:
        return bool(self.clips)


@dataclass(frozen=True)
class Capabilities:
    """What an engine declares it can do; front ends and the service ask this, never the engine's name."""

    cloning: bool = False  # speaks from reference clips (implements CloningEngine)
    streaming: bool = False  # yields audio within a sentence as it is made
    builtin_speakers: bool = False  # has named speakers of its own
    batching: bool = False  # makes several sentences at once, a step at a time (implements BatchingEngine)


@runtime_checkable
class Engine(Protocol):
    """A loaded-once synthesis backend, driven by one thread (the synthesis worker)."""

    name: str
    capabilities: Capabilities

    @property
    def sample_rate(self) -> int: ...

    def languages(self) -> list[str]: ...

    def max_chars(self, language: str) -> int:
        """The longest text `synthesize` takes in one call for this language."""
        ...

    def load(self) -> None: ...

    def check_voice(self, voice: Voice | None) -> None:
        """Raise VoiceError if this engine cannot speak with `voice` (before loading, where it can tell)."""
        ...

    def synthesize(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Yield float32 mono chunks at `sample_rate` for one sentence-sized `text`.

        `options.speed` is a rate: the audio at speed s is 1/s as long as at 1.0 (to a few samples).
        """
        ...


@runtime_checkable
class CloningEngine(Engine, Protocol):
    """An engine that clones voices from reference clips through cached speaker latents."""

    def max_reference_seconds(self) -> float:
        """How much of each reference clip the model uses; the rest need not be read or stored."""
        ...

    def latents_cached(self, voice: Voice) -> bool: ...

    def ensure_latents(self, voice: Voice, force: bool = False) -> str:
        """Compute and cache `voice`'s latents unless fresh ones are cached; returns "computed" or "cached"."""
        ...

    def speaker_latents(self, voice: Voice) -> SpeakerLatents:
        """The latents `voice` speaks with (computed and cached for clips, the model's for a built-in speaker)."""
        ...

    def speakers(self) -> list[str]:
        """The model's built-in speakers (once loaded)."""
        ...


@runtime_checkable
class Sentence(Protocol):
    """One sentence a batching engine is making, a step at a time: its audio as it comes, and how it ended."""

    @property
    def done(self) -> bool:
        """No more audio will come (it was all made, or `error` says why not)."""
        ...

    @property
    def error(self) -> BaseException | None: ...

    def take(self) -> list[np.ndarray]:
        """The audio made since the last call, in order (float32 mono at the engine's rate). An engine may do the
        work a step made due here (decoding, say), so a worker taking each sentence's audio in turn hands one
        sentence's audio on before it works on the next one's."""
        ...

    def close(self) -> None:
        """Drop what it holds (caches); called when it is done or abandoned."""
        ...


@runtime_checkable
class BatchingEngine(Engine, Protocol):
    """An engine that advances several sentences together: one step costs about what one sentence's step costs."""

    def max_batch(self) -> int:
        """How many sentences a step should take by default on this engine's device and precision (once loaded)."""
        ...

    def begin(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Sentence:
        """Start one sentence-sized `text` (cheap: no model step; may compute a voice's latents)."""
        ...

    def step(self, sentences: Sequence[Sentence]) -> None:
        """Advance each unfinished sentence by one step; a failure of one sentence is set on it, not raised."""
        ...
