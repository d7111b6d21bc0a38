"""The core of every server front end: admission to the one worker, request limits, voices by name, clone uploads."""

from __future__ import annotations

import contextlib
import math
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from speakcli import __version__
from speakcli.engines.base import SpeakerLatents, SynthesisOptions, Voice
from speakcli.errors import BusyError, LimitError, OutputError, SpeakError, UsageError, VoiceError
from speakcli.service import CloneResult, PrecomputeResult, SpeechService, VoiceInfo, check_speakable
from speakcli.voices import validate_name
from speakcli.worker import Job


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


class Gateway:
    """Admits requests to the service's single worker, in arrival order, and refuses them when the queue is full.

    Every front end (HTTP, Wyoming) holds one gateway over one `SpeechService`; none touches the engine.
    """

    def __init__(self, service: SpeechService, limits: Limits | None = None) -> None:
        self.service = service
        self.limits = limits or Limits()
        self._lock = threading.Lock()
        self._in_flight: set[Job[Any]] = set()  # admitted jobs not yet finished
        self._held = 0  # places held by work that is not one job (a clone)
        self._clones: set[str] = set()  # voice names being cloned now
        self.served = 0  # requests finished (made, failed or cancelled)
        self._closing = threading.Event()
        self.started_at = time.time()
        from speakcli.serving.batchjobs import BatchJobs

        self.batches = BatchJobs(self)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def stop_accepting(self) -> None:
        """Refuse new requests and cancel every job, queued or running (each stops after its sentence)."""
        self._closing.set()
        with self._lock:
            jobs = list(self._in_flight)
        for job in jobs:
            job.cancel()
        self.batches.cancel_all()

    def close(self) -> None:
        """Stop accepting, join the batch threads, close the service (its worker). Idempotent."""
        self.stop_accepting()
        self.batches.close()
        self.service.close()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    # -- admission ---------------------------------------------------------------------------------------------
    @property
    def waiting(self) -> int:
        """Requests admitted that wait: those the worker has not taken up yet, and those it has beyond the ones it
        serves at once (its batch size). A clone counts while it runs."""
        with self._lock:
            return self._waiting_locked()

    def _waiting_locked(self) -> int:
        started = sum(job.started.is_set() for job in self._in_flight)
        queued = len(self._in_flight) - started
        beyond = max(0, started - self.service.worker.max_batch)
        return self._held + queued + beyond + self.batches.queued_items()

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: the worker serves the requests in turns, so the one with the
        fewest sentences left ends after about that many sentences of each request in hand."""
        worker = self.service.worker
        left = [job.sentences_left() for job in self._in_flight] or [1]
        rounds = max(1, len(left) / worker.max_batch)
        return max(1, min(60, math.ceil(min(left) * rounds * worker.seconds_per_sentence)))

    def _check_room_locked(self) -> None:
        if self._closing.is_set():
            raise BusyError("the server is shutting down", retry_after=5)
        waiting = self._waiting_locked()
        if waiting >= self.limits.max_queue:
            raise BusyError(
                f"the queue is full ({waiting} requests waiting); try again shortly",
                retry_after=self._retry_after(),
            )

    @contextlib.contextmanager
    def admitted(self) -> Iterator[None]:
        """Hold a place in the queue for work that is not one job (a clone), or raise `BusyError`."""
        with self._lock:
            self._check_room_locked()
            self._held += 1
        try:
            yield
        finally:
            with self._lock:
                self._held -= 1

    def _finished(self, job: Job[Any]) -> None:
        with self._lock:
            self._in_flight.discard(job)
            self.served += 1

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
        with self._lock:  # the check and the queueing in one step: two requests cannot both take the last place
            self._check_room_locked()
            job = self.service.speak(request.text, voice, opts, notify, prepared=request.prepared)
            self._in_flight.add(job)
        job.add_done_callback(self._finished)
        return job

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
        validate_name(name)
        if not uploads:
            raise VoiceError("no clip was sent; send one or more audio files")
        if len(uploads) > self.limits.max_clips:
            raise LimitError(f"{len(uploads)} clips sent; the limit is {self.limits.max_clips}")
        for up in uploads:
            if len(up.data) > self.limits.max_upload_bytes:
                raise LimitError(f"clip {up.filename!r} is larger than {self.limits.max_upload_bytes} bytes")
        self.service.cloner  # noqa: B018 - refuse before writing anything when this engine cannot clone
        with self._cloning(name), self.admitted(), tempfile.TemporaryDirectory(prefix="speakcli-upload-") as tmp:
            paths: list[Path] = []
            for i, up in enumerate(uploads):
                path = Path(tmp) / upload_name(up.filename, i, {p.name for p in paths})
                path.write_bytes(up.data)
                paths.append(path)
            try:
                return self.service.clone(paths, name, language, description, force=False)
            except SpeakError as exc:
                raise self._as_client_sees(exc, tmp) from None

    def _as_client_sees(self, exc: SpeakError, upload_dir: str) -> SpeakError:
        """The error with the client's own clip names, and nothing of this server's folders."""
        message = str(exc).replace(f"{upload_dir}{os.sep}", "")
        for folder in self.service.library.dirs():
            message = message.replace(str(folder), "the server's voices folder")
        return exc.reworded(message)

    def reference_latents(self, upload: Upload) -> SpeakerLatents:
        """The speaker latents of one uploaded clip (coqui's /clone_speaker), saving nothing; blocking."""
        if len(upload.data) > self.limits.max_upload_bytes:
            raise LimitError(f"clip {upload.filename!r} is larger than {self.limits.max_upload_bytes} bytes")
        self.service.cloner  # noqa: B018 - refuse before writing anything when this engine cannot clone
        with self.admitted(), tempfile.TemporaryDirectory(prefix="speakcli-upload-") as tmp:
            path = Path(tmp) / upload_name(upload.filename, 0, set())
            path.write_bytes(upload.data)
            try:
                return self.service.reference_latents([path])
            except SpeakError as exc:
                raise self._as_client_sees(exc, tmp) from None

    def studio_speakers(self) -> dict[str, SpeakerLatents]:
        """Every voice with its latents (coqui's /studio_speakers); blocking: waits its turn on the worker."""
        with self.admitted():
            return self.service.studio_speakers()

    @contextlib.contextmanager
    def _cloning(self, name: str) -> Iterator[None]:
        """Hold `name` while a clone makes it: a second clone of the same name is refused at once (409)."""
        with self._lock:
            if name in self._clones:
                raise OutputError(f"voice {name!r} is being cloned by another request", code="conflict")
            self._clones.add(name)
        try:
            yield
        finally:
            with self._lock:
                self._clones.discard(name)

    def precompute(self, names: Sequence[str] | None = None) -> list[PrecomputeResult]:
        with self.admitted():
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
