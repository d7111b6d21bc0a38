"""The core of every server front end: requests checked and admitted to the one worker, voices by name, reports."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from speakcli import __version__
from speakcli.engines.base import SpeakerLatents, SynthesisOptions, Voice
from speakcli.errors import LimitError, SpeakError, UsageError
from speakcli.service import CloneResult, PrecomputeResult, SpeechService, VoiceInfo, check_speakable
from speakcli.serving.admission import Admission
from speakcli.serving.requests import Limits, SpeechRequest, Upload, check_sampling, check_speed, check_temperature
from speakcli.serving.uploads import Uploads
from speakcli.settings import Settings
from speakcli.speakable import Speakable
from speakcli.voices import validate_name
from speakcli.worker import Job

__all__ = ["Gateway", "Limits", "SpeechRequest", "Upload", "check_sampling", "check_speed", "check_temperature"]


class Gateway:
    """Checks requests, resolves their voices by name and admits them to the service's single worker (`Admission`
    refuses them when the queue is full); clone uploads go through `Uploads`, batch jobs through `BatchJobs`.

    Every front end (HTTP, Wyoming) holds one gateway over one `SpeechService`; none touches the engine.
    """

    def __init__(self, service: SpeechService, limits: Limits | None = None) -> None:
        self.service = service
        self.limits = limits or Limits()
        self.started_at = time.time()
        from speakcli.serving.batchjobs import BatchJobs

        self.batches = BatchJobs(self)
        self.admission = Admission(service.worker, self.limits.max_queue, self.batches.queued_items)
        self.uploads = Uploads(service, self.limits, self.admission)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        """Refuse new requests and cancel every job, queued or running (each stops after its step)."""
        self.admission.stop_accepting()
        self.batches.cancel_all()

    def close(self) -> None:
        """Stop accepting, join the batch threads, close the service (its worker). Idempotent."""
        self.stop_accepting()
        self.batches.close()
        self.service.close()

    @property
    def closing(self) -> bool:
        return self.admission.closing

    # -- admission ---------------------------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests admitted that wait (see `Admission`)."""
        return self.admission.waiting

    @property
    def served(self) -> int:
        return self.admission.served

    # -- requests ----------------------------------------------------------------------------------------------
    def check_text(self, text: str, where: str = "text") -> None:
        if len(text) > self.limits.max_text:
            raise LimitError(f"{where} is {len(text)} characters; the limit is {self.limits.max_text}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate, as JSON's \ud800 can carry: no text an engine could read
            raise UsageError(f"{where} is not valid Unicode (it has a lone surrogate); send UTF-8 text") from None
        check_speakable(text, where)

    def voice(self, name: str | None) -> Voice | None:
        """A voice by name only: one in the library, or an engine's built-in speaker; never a path."""
        if not name or name == "default":
            return self.service.voice(None)
        validate_name(name)  # refuses separators and "..": a request never names a server path
        voice = self.service.library.find(name) if self.service.engine.capabilities.cloning else None
        voice = voice or Voice(name=name, speaker=name)  # else one of the engine's own speakers
        self.service.engine.check_voice(voice)
        return voice

    def voice_names(self) -> list[str]:
        """The names a request can use as a voice on this engine (for listings); blocking: reads the library."""
        names = [row.name for row in self.voices() if row.error is None]
        if self.service.engine.capabilities.cloning:
            return names
        usable = []
        for name in names:
            try:
                self.service.engine.check_voice(Voice(name=name, speaker=name))
                usable.append(name)
            except SpeakError:
                pass
        return usable

    def options(self, request: SpeechRequest) -> SynthesisOptions:
        opts = self.service.options(request.language, request.speed, stream=True)
        if request.temperature is not None:
            check_temperature(request.temperature)
            opts = replace(opts, temperature=request.temperature)
        if request.seed is not None:
            if not 0 <= request.seed < 2**63:
                raise UsageError(f"seed {request.seed} is out of range; use a whole number from 0 to 2**63 - 1")
            opts = replace(opts, seed=request.seed)
        check_sampling(request.top_k, request.top_p, request.repetition_penalty)
        return replace(opts, top_k=request.top_k, top_p=request.top_p, repetition_penalty=request.repetition_penalty)

    def prepare(self, request: SpeechRequest) -> tuple[Voice | None, SynthesisOptions]:
        """Check a request and resolve its voice and options, raising before anything is queued."""
        self.check_text(request.text)
        if request.speed is not None:
            check_speed(request.speed)
        if request.latents is None:
            return self.voice(request.voice), self.options(request)
        if request.voice:
            raise UsageError("give the speaker's latents or a voice name, not both")
        voice = Voice(name="latents", latents=request.latents)
        self.service.engine.check_voice(voice)  # the shape this model takes; Piper takes none
        return voice, self.options(request)

    def speak(self, request: SpeechRequest, notify: Callable[[], None] | None = None) -> Job[np.ndarray]:
        """Queue one request on the worker (or raise `BusyError`); iterate or `take` the job for audio chunks."""
        voice, opts = self.prepare(request)
        return self.admission.admit(
            lambda: self.service.speak(request.text, voice, opts, notify, prepared=request.prepared)
        )

    def voices(self) -> list[VoiceInfo]:
        return self.service.voices()

    def voice_sample(self, name: str) -> Path:
        """The first clip of a library voice (for previews); a name, never a path."""
        validate_name(name)
        voice = self.service.library.find(name)
        if voice is None or not voice.clips:
            from speakcli.errors import NotFoundError

            raise NotFoundError(f"no voice named {name!r} with a clip")
        return voice.clips[0]

    def clone(
        self,
        uploads: Sequence[Upload],
        name: str,
        language: str | None = None,
        description: str | None = None,
    ) -> CloneResult:
        """Save uploaded clips as voice `name` with its latents cached; blocking (call it off the event loop)."""
        return self.uploads.clone(uploads, name, language, description)

    def reference_latents(self, upload: Upload) -> SpeakerLatents:
        """The speaker latents of one uploaded clip (coqui's /clone_speaker), saving nothing; blocking."""
        return self.uploads.reference_latents(upload)

    def studio_speakers(self) -> dict[str, SpeakerLatents]:
        """Every voice with its latents (coqui's /studio_speakers); blocking: waits its turn on the worker."""
        return self.uploads.studio_speakers()

    def precompute(self, names: Sequence[str] | None = None) -> list[PrecomputeResult]:
        with self.admission.held():
            return self.service.precompute(names or None)

    def scheduler(self) -> dict[str, Any]:
        """What the worker has in hand: jobs by class, and how many sentences a step takes (at most, and lately)."""
        state = self.service.worker.state()
        return {
            "active": state.active,
            "waiting": self.waiting,
            "interactive": state.interactive,
            "background": state.background,
            "max_batch": state.max_batch,
            "batch_in_use": state.last_batch,
            "seconds_per_sentence": round(self.service.worker.seconds_per_sentence, 3),
        }

    # -- what front ends read of the core: through the gateway, never through its service ------------------------
    @property
    def sample_rate(self) -> int:
        return self.service.sample_rate

    @property
    def settings(self) -> Settings:
        """The server's settings (frozen): its default language, speed, temperature, pause."""
        return self.service.settings

    @property
    def speakable(self) -> Speakable:
        """How this server turns plain text into what is read aloud (Markdown, actions, the lexicon)."""
        return self.service.speakable

    @property
    def engine_note(self) -> str:
        """Which engine and model this server speaks with, in words."""
        return self.service.spec.note

    def languages(self) -> list[str]:
        return self.service.engine.languages()

    def is_saved_voice(self, name: str) -> bool:
        """Whether `name` is a voice of the library (not an engine's speaker); blocking: reads the voices dirs."""
        return self.service.library.find(name) is not None

    def info(self) -> dict[str, Any]:
        """What /v1/info reports: cheap to make, so it answers at once while the worker is busy."""
        engine = self.service.engine
        return {
            "version": __version__,
            "engine": engine.name,
            "model": self.service.spec.note,
            "device": self.service.spec.device,
            "sample_rate": engine.sample_rate,
            "languages": engine.languages(),
            "capabilities": {
                "cloning": engine.capabilities.cloning,
                "streaming": engine.capabilities.streaming,
                "builtin_speakers": engine.capabilities.builtin_speakers,
            },
            "queue": {"waiting": self.waiting, "max": self.limits.max_queue},
            "scheduler": self.scheduler(),
            "served": self.served,
            "jobs": self.batches.counts(),
            "limits": {"max_text": self.limits.max_text, "max_clips": self.limits.max_clips},
            "uptime_seconds": round(time.time() - self.started_at, 1),
        }
