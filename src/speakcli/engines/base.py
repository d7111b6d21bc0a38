"""The engine Protocol every synthesis backend implements, and the value types it takes."""

from __future__ import annotations

from collections.abc import Iterator
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
    # Yield audio as it is generated (for playback); off, an engine may make each sentence in one piece,
    # which XTTS does faster since streaming re-decodes the audio so far at every chunk.
    stream: bool = True


@dataclass(frozen=True)
class Voice:
    """A resolved voice: an engine's built-in speaker, or reference clips to clone from."""

    name: str
    clips: tuple[Path, ...] = ()
    speaker: str | None = None
    language: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def is_clone(self) -> bool:
        return bool(self.clips)


@runtime_checkable
class Engine(Protocol):
    """A loaded-once synthesis backend, driven by one thread (the synthesis worker)."""

    name: str

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
        """Yield float32 mono chunks at `sample_rate` for one sentence-sized `text`."""
        ...

    def describe(self) -> dict[str, Any]: ...
