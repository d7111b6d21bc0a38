"""xtts-api-server's /set_tts_settings: the defaults of that dialect's requests, one set per server."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from speakcli.errors import UsageError
from speakcli.serving.gateway import Gateway, SpeechRequest, check_speed, check_temperature

# What speakcli's engines take (the sampling ones on XTTS); the rest is kept and reported only: length_penalty
# shapes only beam search, which XTTS's sampling never does (coqui passes it to generate, where it does nothing),
# and speakcli always splits text and streams in its own chunks.
APPLIED = ("speed", "temperature", "top_k", "top_p", "repetition_penalty")


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise UsageError(f"{name} {value} is out of range; use {low:g} to {high:g}")


@dataclass(frozen=True)
class XttsApiSettings:
    """The settings xtts-api-server defines (its field names and, beyond speed and temperature, its ranges).

    `speed`, `temperature`, `top_k`, `top_p` and `repetition_penalty` shape the audio (the last three on XTTS; its
    defaults are coqui's). `length_penalty` would shape only beam search, which XTTS's sampling never does, and
    speakcli always splits text and streams in its own chunks: those are checked and kept, so the getter returns
    what a client set."""

    speed: float = 1.0
    temperature: float = 0.75
    length_penalty: float = 1.0
    repetition_penalty: float = 10.0  # the sampling speakcli's XTTS does (coqui's default)
    top_k: int = 50
    top_p: float = 0.85
    enable_text_splitting: bool = True
    stream_chunk_size: int = 100

    def __post_init__(self) -> None:
        check_speed(self.speed)
        check_temperature(self.temperature)
        if not math.isfinite(self.length_penalty):
            raise UsageError(f"length_penalty {self.length_penalty} is not a number; use a finite number")
        _check_range("repetition_penalty", self.repetition_penalty, 0.1, 10.0)
        _check_range("top_k", self.top_k, 1, 100)
        _check_range("top_p", self.top_p, 0.01, 1.0)
        _check_range("stream_chunk_size", self.stream_chunk_size, 20, 400)

    def request(self, text: str, voice: str | None, language: str | None) -> SpeechRequest:
        """A request of this dialect, which never gives settings of its own: these settings'."""
        return SpeechRequest(
            text,
            voice,
            language,
            self.speed,
            self.temperature,
            top_k=self.top_k,
            top_p=self.top_p,
            repetition_penalty=self.repetition_penalty,
        )

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class XttsApiDefaults:
    """The settings every xtts-api-server request on one server uses: any client may change them (as there).
    One per HTTP server (the app holds it); no other front end speaks this dialect."""

    def __init__(self, initial: XttsApiSettings) -> None:
        self._lock = threading.Lock()
        self._current = initial

    @classmethod
    def of(cls, gateway: Gateway) -> XttsApiDefaults:
        """The settings a server starts with: its own speed and temperature, xtts-api-server's others."""
        settings = gateway.settings
        return cls(XttsApiSettings(speed=settings.speed, temperature=settings.temperature))

    @property
    def current(self) -> XttsApiSettings:
        with self._lock:
            return self._current

    def update(self, changes: Mapping[str, Any]) -> XttsApiSettings:
        """Replace the settings named in `changes` (the others stay), all checked first: on a bad value nothing
        changes and `UsageError` says which."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(XttsApiSettings)}
        if unknown:
            raise UsageError(f"unknown setting {sorted(unknown)[0]!r}")
        with self._lock:
            self._current = dataclasses.replace(self._current, **changes)
            return self._current
