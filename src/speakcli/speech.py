"""The front ends' one way to speak: validate on the caller's thread, synthesize on the shared worker."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from speakcli.audio import faded
from speakcli.engines import EngineSpec, choose_engine, shared_engine
from speakcli.engines.base import Engine, SynthesisOptions, Voice
from speakcli.errors import EmptyTextError, ModelError, NothingToSayError, UnknownLanguageError
from speakcli.settings import Settings
from speakcli.text import has_speech, split_text
from speakcli.voices import VoiceLibrary
from speakcli.worker import Job, SynthesisWorker


def utterance(engine: Engine, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
    """Audio for `text`: split to the engine's limit, a short fade at each sentence's ends, pauses between."""
    # A piece with no letter or digit ("...", "!!!") is not said: engines vocalise such pieces as noise.
    parts = [p for p in split_text(text, options.language, engine.max_chars(options.language)) if has_speech(p)]
    if not parts:
        raise NothingToSayError() if text.strip() else EmptyTextError()
    gap = np.zeros(round(options.pause * engine.sample_rate), dtype=np.float32)
    for i, part in enumerate(parts):
        if i and gap.size:
            yield gap
        yield from faded(engine.synthesize(part, voice, options), engine.sample_rate)


def check_speakable(text: str, where: str = "the input") -> None:
    """Raise a usage error for text with nothing to say, before any work is queued."""
    if not text.strip():
        raise EmptyTextError(where)
    if not has_speech(text):
        raise NothingToSayError(where)


_workers_lock = threading.Lock()
_workers: dict[EngineSpec, SynthesisWorker] = {}


def shared_worker(spec: EngineSpec) -> SynthesisWorker:
    """The process's one worker for this engine; every front end submits to it."""
    with _workers_lock:
        worker = _workers.get(spec)
        if worker is None:
            worker = SynthesisWorker(shared_engine(spec))
            _workers[spec] = worker
        return worker


@atexit.register
def close_workers() -> None:
    with _workers_lock:
        workers = list(_workers.values())
        _workers.clear()
    for worker in workers:
        worker.close(timeout=5)


@dataclass
class Speaker:
    """Settings, the chosen engine, its worker and the voice library, bundled for a command."""

    settings: Settings
    spec: EngineSpec

    @classmethod
    def from_settings(cls, settings: Settings) -> Speaker:
        return cls(settings, choose_engine(settings))

    def __post_init__(self) -> None:
        self.engine = shared_engine(self.spec)
        self.worker = shared_worker(self.spec)
        self.library = VoiceLibrary(self.settings.voices_dir)

    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    def options(self, language: str | None = None, speed: float | None = None, stream: bool = True) -> SynthesisOptions:
        lang = language or self.settings.language
        supported = self.engine.languages()
        base = lang.split("-")[0] if lang != "zh-cn" else "zh"
        if lang not in supported and base not in supported:
            raise UnknownLanguageError(lang, self.engine.name, supported)
        return SynthesisOptions(
            language=lang,
            speed=speed or self.settings.speed,
            temperature=self.settings.temperature,
            pause=self.settings.pause,
            stream=stream,
        )

    def voice(self, spec: str | None = None) -> Voice | None:
        """Resolve a --voice value (or the settings' voice) to what the engine will use; checks it fits."""
        voice = self.library.resolve(spec if spec is not None else self.settings.voice)
        if voice is None and self.engine.name == "xtts":
            voice = self.library.default()
        self.engine.check_voice(voice)
        return voice

    def require_cloning(self) -> None:
        """Raise unless this engine clones voices (XTTS)."""
        if self.engine.name != "xtts":
            raise ModelError(f"cloning needs an XTTS model, and this run uses {self.spec.note}")

    def max_reference_seconds(self) -> float | None:
        params = getattr(self.engine, "latent_params", None)
        return float(params()["max_ref_len"]) if params else None

    def speak(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Job[np.ndarray]:
        check_speakable(text)
        return self.worker.submit(lambda engine: utterance(engine, text, voice, options))
