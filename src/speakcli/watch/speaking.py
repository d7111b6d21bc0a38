"""Speaks a watched line through the SpeechService: in the voice, language and speed chosen for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from speakcli.errors import SpeakError, VoiceError

if TYPE_CHECKING:
    from speakcli.engines.base import SynthesisOptions, Voice
    from speakcli.service import SpeechService
    from speakcli.watch.lines import Line
    from speakcli.watch.relexicon import LexiconFile

CACHE = 256  # voices and option sets kept resolved; lines may name any number of them


K = TypeVar("K")
V = TypeVar("V")


def _resolved(cache: dict[K, V | SpeakError], key: K, make: Callable[[], V]) -> V:
    """`make()` for `key`, made once and kept (its SpeakError too, raised each time); at most CACHE kept."""
    if key not in cache:
        if len(cache) >= CACHE:
            cache.clear()
        try:
            cache[key] = make()
        except SpeakError as exc:
            cache[key] = exc
    found = cache[key]
    if isinstance(found, SpeakError):
        raise found
    return found  # type: ignore[return-value]  # not a SpeakError: a V


class LineSpeaker:
    """`speak(text, line)` for the daemon: resolves each voice and option set once (a bad one fails its line).
    With a `lexicon` file, each line is spoken with the lexicon the file holds when the line is submitted."""

    def __init__(self, service: SpeechService, stream: bool, lexicon: LexiconFile | None = None) -> None:
        self.service = service
        self.stream = stream
        self.lexicon = lexicon
        self.default = service.voice()  # --voice: a bad one is refused here, at start
        self._voices: dict[str, Voice | SpeakError | None] = {}
        self._options: dict[tuple[str | None, float | None], SynthesisOptions | SpeakError] = {}

    def __call__(self, text: str, line: Line) -> Any:
        if self.lexicon is not None:
            self.lexicon.refresh()
        voice = self.default if line.voice is None else self.voice(line.voice)
        return self.service.speak(text, voice, self.options(line.voicing.language, line.voicing.speed))

    def voice(self, name: str) -> Voice | None:
        """The voice `name` stands for; VoiceError (or UsageError) if the engine cannot speak with it."""
        return _resolved(self._voices, name, lambda: self.service.voice(name))

    def options(self, language: str | None, speed: float | None) -> SynthesisOptions:
        """Options at a line's language and speed, checked as batch checks a row's (an unknown language fails)."""

        def make() -> SynthesisOptions:
            settings = replace(
                self.service.settings,
                language=language or self.service.settings.language,
                speed=speed if speed is not None else self.service.settings.speed,
            ).validate()
            return self.service.options(settings.language, settings.speed, stream=self.stream)

        return _resolved(self._options, (language, speed), make)

    def check_voices(self, names: list[str], what: str) -> None:
        """Refuse, before the first line, a voice the engine cannot speak with (`what` says where it was named)."""
        for name in names:
            try:
                self.voice(name)
            except VoiceError as exc:
                raise exc.prefixed(f"{what}: voice {name!r}") from None

    def library_voices(self) -> list[str]:
        """The voices of the library this engine can speak with, by name: what --auto-voices gives out."""
        pool = []
        for entry in self.service.library.all():
            if entry.voice is None:
                continue
            try:
                self.voice(entry.name)
            except SpeakError:
                continue
            pool.append(entry.name)
        return pool
