"""Clips a client uploads: saved as a voice, or made into latents, in a private folder named as the client named them."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from speakcli.engines.base import SpeakerLatents
from speakcli.errors import LimitError, OutputError, SpeakError, VoiceError
from speakcli.service import CloneResult, SpeechService
from speakcli.serving.admission import Admission
from speakcli.serving.requests import Limits, Upload, upload_name
from speakcli.voices import validate_name


class Uploads:
    """Cloning from uploaded clips for a server: limits checked before anything is written, one clone of a name at a
    time, errors that name the clips as the client sent them and nothing of the server's folders."""

    def __init__(self, service: SpeechService, limits: Limits, admission: Admission) -> None:
        self.service = service
        self.limits = limits
        self.admission = admission
        self._lock = threading.Lock()
        self._clones: set[str] = set()  # voice names being cloned now

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
        with self._cloning(name), self.admission.held(), tempfile.TemporaryDirectory(prefix="speakcli-upload-") as tmp:
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
        with self.admission.held(), tempfile.TemporaryDirectory(prefix="speakcli-upload-") as tmp:
            path = Path(tmp) / upload_name(upload.filename, 0, set())
            path.write_bytes(upload.data)
            try:
                return self.service.reference_latents([path])
            except SpeakError as exc:
                raise self._as_client_sees(exc, tmp) from None

    def studio_speakers(self) -> dict[str, SpeakerLatents]:
        """Every voice with its latents (coqui's /studio_speakers); blocking: waits its turn on the worker."""
        with self.admission.held():
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
