"""The one core every front end drives: settings, the chosen engine, its single worker, and the voice library."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from speakcli.engines import EngineSpec, choose_engine, cloning_engine, create_engine
from speakcli.engines.base import CloningEngine, Engine, SpeakerLatents, SynthesisOptions, Voice
from speakcli.errors import Hint, ModelError, SpeakError, UnknownLanguageError, VoiceError
from speakcli.lexicon import Lexicon
from speakcli.scheduling.jobs import Priority, ProgressCallback, SpeechTask
from speakcli.settings import Settings
from speakcli.speakable import Speakable
from speakcli.speech import Piece, check_plan, check_speakable, render, script, utterance
from speakcli.ssml import Plan, speech_plan
from speakcli.text import base_language
from speakcli.voices import VoiceLibrary
from speakcli.worker import Job, SynthesisWorker

# The text pipeline's functions lived here first; front ends and tests still import them from the service.
__all__ = [
    "CloneResult",
    "Piece",
    "PrecomputeResult",
    "ProgressCallback",
    "SpeechService",
    "VoiceInfo",
    "check_plan",
    "check_speakable",
    "describe",
    "render",
    "script",
    "utterance",
]


@dataclass
class VoiceInfo:
    """One voice of the library as a listing shows it; `error` says why a broken one cannot be used."""

    name: str
    source: str
    error: str | None = None
    clips: list[str] = field(default_factory=list)
    seconds: float = 0.0
    language: str | None = None
    description: str | None = None
    cached: bool | None = None  # latents cached for this model; None when the engine does not clone


@dataclass
class CloneResult:
    voice: Voice
    latents: str  # "computed" or "cached"
    reference_seconds: float
    warnings: list[str]
    saved_in: Path | None  # the voices dir, when saved under a name


@dataclass
class PrecomputeResult:
    voice: str
    status: str  # computed, cached, failed
    detail: str = ""


class SpeechService:
    """Owns one engine and the one worker thread that drives it; every synthesis goes through `worker`.

    Open one per process (the CLI per command, a server for its life) and close it: `with SpeechService(s) as svc`.
    """

    def __init__(self, settings: Settings, spec: EngineSpec | None = None) -> None:
        self.settings = settings
        # First: a bad lexicon file is refused before an engine or a thread exists.
        self.speakable = Speakable.of(settings.verbatim, settings.actions, settings.lexicon)
        self.spec = spec or choose_engine(settings)
        self.engine = create_engine(self.spec)
        self.worker = SynthesisWorker(self.engine, max_batch=settings.max_batch)
        self.library = VoiceLibrary(settings.voices_dir)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def close(self, timeout: float | None = 5) -> None:
        """Stop after the job in progress; queued jobs fail. Idempotent."""
        self.worker.close(timeout=timeout)

    def __enter__(self) -> SpeechService:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- speaking ----------------------------------------------------------------------------------------------
    @property
    def sample_rate(self) -> int:
        return self.engine.sample_rate

    def options(self, language: str | None = None, speed: float | None = None, stream: bool = True) -> SynthesisOptions:
        lang = language or self.settings.language
        supported = self.engine.languages()
        if lang not in supported and base_language(lang) not in supported:
            raise UnknownLanguageError(lang, self.engine.name, supported)
        return SynthesisOptions(
            language=lang,
            speed=speed or self.settings.speed,
            temperature=self.settings.temperature,
            pause=self.settings.pause,
            stream=stream,
            seed=self.settings.seed,
        )

    def voice(self, spec: str | None = None) -> Voice | None:
        """Resolve a voice name, speaker or clip path (or the settings' voice) to what the engine will use."""
        spec = spec if spec is not None else self.settings.voice
        voice = self.library.resolve(spec)
        if voice is None and self.engine.capabilities.cloning:
            voice = self.library.default()  # a cloning engine speaks with the bundled reference by default
        elif voice is not None and voice.is_clone and not self.engine.capabilities.cloning and spec == voice.name:
            # A library voice's name, on an engine that cannot clone: the name of one of its own speakers
            # (the bundled voice "joe" is both Piper's voice and a reference clip for XTTS).
            voice = Voice(name=voice.name, speaker=voice.name)
        self.engine.check_voice(voice)
        return voice

    def use_lexicon(self, lexicon: Lexicon | None) -> None:
        """Speak with another lexicon (or none) from now on: for a daemon whose lexicon file changed
        (`Lexicon.load(path)`). Text already queued keeps the lexicon it was queued with."""
        self.speakable = self.speakable.with_lexicon(lexicon)

    def speak(
        self,
        text: str | Plan,
        voice: Voice | None,
        options: SynthesisOptions,
        notify: Callable[[], None] | None = None,
        *,
        ssml: bool | None = None,
        on_progress: ProgressCallback | None = None,
        priority: Priority = Priority.INTERACTIVE,
        prepared: bool = False,
    ) -> Job[np.ndarray]:
        """Queue `text` on the worker; iterate the job for audio chunks as they are made, cancel it to stop.

        `text` is read as SSML when `ssml` is true, or when it is None and the text starts with `<speak>`;
        a `Plan` is spoken as it is. Plain text is made speakable (`speakable`: Markdown read aloud, the lexicon)
        on the worker, unless `prepared` says it already was (a stream's sentences). `notify` is called on the
        worker thread whenever the job has something new (see `Job.take`); `on_progress(done, total)` too: with 0
        once the engine is loaded, then after each sentence. The worker serves every job a sentence (or a step) at
        a time, `priority` deciding who goes first.
        """
        plan = text if isinstance(text, Plan) else speech_plan(text, ssml, None if prepared else self.speakable)
        check_plan(plan)  # empty text fails here, before anything is queued
        # Split on the worker: long text takes a while, and the caller stays free to be interrupted.
        return self.worker.submit(SpeechTask(plan, voice, options, priority, on_progress), notify)

    def load(self) -> None:
        """Load the engine now (on the worker), not with the first request; raises what loading raises."""
        self.worker.call(lambda engine: None)

    # -- voices ------------------------------------------------------------------------------------------------
    @property
    def cloner(self) -> CloningEngine:
        """The engine as a cloning engine, or a model error saying this engine cannot clone."""
        return self._cloner("cloning needs")

    def _cloner(self, what: str) -> CloningEngine:
        engine = cloning_engine(self.engine)
        if engine is None:
            raise ModelError(
                f"{what} an XTTS model, and this run uses {self.spec.note}", hint=Hint.MODEL_DIR, code="cannot_clone"
            )
        return engine

    def speaker_latents(self, voice: Voice) -> SpeakerLatents:
        """The latents `voice` speaks with, as numbers: computed on the worker (and cached) for clips."""
        self._cloner("speaker latents need")
        return self.worker.call(lambda e: cloning_engine(e).speaker_latents(voice))  # type: ignore[union-attr]

    def reference_latents(self, clips: Sequence[Path]) -> SpeakerLatents:
        """Check reference clips and compute their latents, saving no voice (the cache keeps them by content)."""
        from speakcli.refaudio import check_references

        report = check_references(list(clips), self.cloner.max_reference_seconds())
        return self.speaker_latents(Voice(name="reference", clips=tuple(c.path.resolve() for c in report.clips)))

    def studio_speakers(self) -> dict[str, SpeakerLatents]:
        """The voices a client can speak with by their latents: the model's built-in speakers, then saved voices
        whose latents are cached (a listing computes none; `precompute` makes them). Saved ones win a name."""
        cloner = self._cloner("speaker latents need")
        saved = [e.voice for e in self.library.all() if e.voice is not None and cloner.latents_cached(e.voice)]

        def collect(engine: Engine) -> dict[str, SpeakerLatents]:
            c = cloning_engine(engine)
            assert c is not None
            found = {name: c.speaker_latents(Voice(name=name, speaker=name)) for name in c.speakers()}
            return found | {voice.name: c.speaker_latents(voice) for voice in saved}

        return self.worker.call(collect)

    def voices(self) -> list[VoiceInfo]:
        """Every voice in the voices dirs, with its clips, length, and whether its latents are cached."""
        import soundfile as sf

        cloner = cloning_engine(self.engine)
        rows = []
        for entry in self.library.all():
            row = VoiceInfo(name=entry.name, source=str(entry.source), error=entry.error)
            if entry.voice is not None:
                voice = entry.voice
                for clip in voice.clips:
                    try:
                        row.seconds += sf.info(str(clip)).duration
                    except Exception as exc:  # an unreadable clip: say so rather than fail the listing
                        row.error = f"cannot read {clip.name}: {exc}"
                row.seconds = round(row.seconds, 2)
                row.clips = [c.name for c in voice.clips]
                row.language = voice.language
                row.description = voice.meta.get("description")
                try:
                    row.cached = cloner.latents_cached(voice) if cloner else None
                except SpeakError as exc:
                    row.cached, row.error = False, str(exc)
            rows.append(row)
        return rows

    def clone(
        self,
        references: Sequence[Path],
        name: str | None = None,
        language: str | None = None,
        description: str | None = None,
        force: bool = False,
        on_warning: Callable[[str], None] | None = None,
    ) -> CloneResult:
        """Check the clips, compute (and cache) their latents; with `name`, save them as a voice, whole or not at all."""
        from speakcli.refaudio import check_references

        cloner = self.cloner
        # A saved voice speaks in its language: one the engine lacks would fail every request that uses it.
        language = self.options(language).language  # UnknownLanguageError for that
        if name is not None:
            self.library.check_new(name, force)
        max_seconds = cloner.max_reference_seconds()
        report = check_references(list(references), max_seconds)
        if on_warning is not None:
            for warning in report.warnings:
                on_warning(warning)
        if name is None:
            voice = Voice(name="reference", clips=tuple(c.path.resolve() for c in report.clips))
            status = self.worker.call(lambda e: cloning_engine(e).ensure_latents(voice))  # type: ignore[union-attr]
            return CloneResult(voice, status, report.total_seconds, report.warnings, None)
        meta = {
            "language": language,
            "description": description or f"cloned from {', '.join(p.name for p in references)}",
            "source": "speakcli clone",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # Built in a hidden folder and moved into place only once its latents are made: a clone that fails
        # (or is interrupted) leaves no half-made voice behind.
        staged = self.library.stage(name, [c.path for c in report.clips], meta, force, max_seconds)
        try:
            status = self.worker.call(lambda e: cloning_engine(e).ensure_latents(staged.voice))  # type: ignore[union-attr]
            voice = staged.commit()
        finally:
            staged.discard()
        return CloneResult(voice, status, report.total_seconds, report.warnings, self.library.user_dir)

    def precompute(
        self,
        names: Sequence[str] | None = None,
        force: bool = False,
        on_voice: Callable[[str, int, int], None] | None = None,
    ) -> list[PrecomputeResult]:
        """Compute the latents of every voice (or the named ones) that has no fresh cache entry.

        `on_voice(name, index, total)` is called before each voice, for progress.
        """
        self.cloner  # noqa: B018 - raises when this engine cannot clone
        entries = {e.name: e for e in self.library.all()}
        if names:
            missing = [n for n in names if n not in entries]
            if missing:
                raise VoiceError(f"no voice named {', '.join(missing)}", hint=Hint.LIST_VOICES)
            chosen = [entries[n] for n in names]
        else:
            chosen = list(entries.values())
        results = []
        for i, entry in enumerate(chosen):
            if on_voice is not None:
                on_voice(entry.name, i, len(chosen))
            if entry.voice is None:
                results.append(PrecomputeResult(entry.name, "failed", entry.error or "unusable"))
                continue
            voice = entry.voice
            try:
                status = self.worker.call(lambda e, v=voice: cloning_engine(e).ensure_latents(v, force=force))  # type: ignore[union-attr,misc]
                results.append(PrecomputeResult(entry.name, str(status)))
            except SpeakError as exc:
                results.append(PrecomputeResult(entry.name, "failed", str(exc)))
        return results

    def batch(self, items: list[Any], out_dir: Path, options: Any = None, executor: Any = None, **kwargs: Any) -> Any:
        """Make every item into its own file in `out_dir`, resumably; see `speakcli.batch.run_batch`."""
        from speakcli.batch import run_batch

        return run_batch(self, items, out_dir, options, executor, **kwargs)

    def describe(self) -> dict[str, Any]:
        """The info report for this service's settings (see `describe`)."""
        return describe(self.settings)


def describe(settings: Settings) -> dict[str, Any]:
    """Versions, the engine and model the settings pick (or why not), dirs, device and audio outputs, as plain data.

    A module function, not only a method: it must work when no engine can be built.
    """
    from speakcli.report import gather

    return gather(settings)
