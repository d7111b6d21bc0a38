"""A stand-in for SpeechService in batch runs: a plain function of the text is the engine; files are real."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import numpy as np

from speakcli.engines.base import SynthesisOptions
from speakcli.settings import Settings
from speakcli.speakable import Speakable


class FunctionJob(list[np.ndarray]):
    """A finished job: its chunks, and the synthesis time a batch records."""

    elapsed = 0.5
    completed = True

    def cancel(self) -> None:
        return None


class FunctionService:
    """The parts of SpeechService a batch uses (`settings`, `spec`, `sample_rate`, `worker.max_batch`,
    `speakable`, `load`, `voice`, `options`, `speak`), with `audio(text)` as its engine: real files and manifest, no model. Set
    `settings` to run with others."""

    sample_rate = 8000

    def __init__(self, audio: Callable[[str], np.ndarray], settings: Settings | None = None) -> None:
        self.audio = audio
        self.settings = settings or Settings()
        self.speakable = Speakable()  # the text is the function's to read as it likes
        self.spec = SimpleNamespace(name="engine", model_dir=None)
        self.worker = SimpleNamespace(max_batch=1, loaded=True)  # one item at a time, as an engine that does not batch

    def load(self) -> None:
        return None

    def voice(self, name: str | None = None) -> None:
        return None

    def options(self, language: str | None = None, speed: float | None = None, stream: bool = True) -> SynthesisOptions:
        s = self.settings
        return SynthesisOptions(language or s.language, speed or s.speed, s.temperature, s.pause, stream)

    def speak(self, text: str, voice: object, options: object, **kwargs: object) -> FunctionJob:
        return FunctionJob([self.audio(text)])
