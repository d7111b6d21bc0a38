"""Which voice says each line: its own, the voice map's for its speaker, an automatic one, or a default."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from speakcli import tomltext
from speakcli.errors import UsageError
from speakcli.watch.parsing import Voicing


def speaker_key(speaker: str) -> str:
    """Speakers are matched without regard to case or surrounding spaces: "Alice" and "alice " are one speaker."""
    return speaker.strip().casefold()


# Speakers given a voice automatically that are remembered (in memory and in the state file, which is rewritten
# for each new one): a chat has thousands of names, and a flood of new ones must cost the same per line.
MAX_SPEAKERS = 10_000
MAX_SPEAKER_KEY = 200  # characters of a speaker's name kept as its key: a JSONL speaker may be of any length


@dataclass(frozen=True)
class VoiceMap:
    """`--voice-map FILE`: a TOML file with `default = "voice"` and a `[speakers]` table of speaker = "voice"."""

    speakers: dict[str, str] = field(default_factory=dict)  # speaker_key -> voice
    default: str | None = None

    @classmethod
    def load(cls, path: Path) -> VoiceMap:
        try:
            data = tomltext.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UsageError(f"voice map {path} does not exist") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read voice map {path} ({exc})") from None
        except tomllib.TOMLDecodeError as exc:
            raise UsageError(f"voice map {path} is not valid TOML ({exc})") from None
        example = 'e.g. default = "joe" and, under [speakers], alice = "anna"'
        unknown = sorted(set(data) - {"default", "speakers"})
        if unknown:
            raise UsageError(f"voice map {path}: unknown key(s) {', '.join(unknown)}; use default and [speakers]")
        default = data.get("default")
        speakers = data.get("speakers", {})
        if default is not None and not (isinstance(default, str) and default):
            raise UsageError(f"voice map {path}: default must be a voice name; {example}")
        if not isinstance(speakers, dict):
            raise UsageError(f"voice map {path}: speakers must be a table; {example}")
        bad = [name for name, voice in speakers.items() if not (isinstance(voice, str) and voice)]
        if bad:
            raise UsageError(f"voice map {path}: speaker {bad[0]!r} must map to a voice name; {example}")
        keyed: dict[str, str] = {}
        for name, voice in speakers.items():
            if speaker_key(name) in keyed:
                raise UsageError(f"voice map {path}: speaker {name!r} is given twice (names match in any case)")
            keyed[speaker_key(name)] = voice
        return cls(keyed, default)

    def voices(self) -> list[str]:
        """Every voice the map names, once each, in a stable order."""
        named = [*self.speakers.values(), *([self.default] if self.default else [])]
        return sorted(set(named))


class Casting:
    """Chooses each line's voice, in this order: the line's own (a JSONL `voice`), the voice map's for its speaker,
    with `auto` a voice of its own for each new speaker, then the map's default (None: the daemon's `--voice`).

    An automatic voice is the pool's least used one (the map's voices count), first in pool order on a tie; it is
    kept through `remember`, so a speaker keeps it across restarts.
    """

    def __init__(
        self,
        voice_map: VoiceMap | None = None,
        pool: Sequence[str] = (),
        auto: bool = False,
        known: dict[str, str] | None = None,
        remember: Callable[[str, str], None] | None = None,
    ) -> None:
        self.map = voice_map or VoiceMap()
        self.pool = list(pool)
        self.auto = auto
        # speaker_key -> voice, from earlier runs and this one, oldest first; at most MAX_SPEAKERS
        self.assigned: dict[str, str] = dict(list((known or {}).items())[-MAX_SPEAKERS:])
        self._uses = dict.fromkeys(self.pool, 0)  # how many speakers each pool voice has: kept, never recounted
        for taken in (*self.map.speakers.values(), *self.assigned.values()):
            self._count(taken, 1)
        self._remember = remember
        self._lock = threading.Lock()

    def _count(self, voice: str, change: int) -> None:
        if voice in self._uses:
            self._uses[voice] += change

    def voice_for(self, voicing: Voicing) -> str | None:
        if voicing.voice is not None:
            return voicing.voice
        if voicing.speaker is not None:
            key = speaker_key(voicing.speaker)
            if key in self.map.speakers:
                return self.map.speakers[key]
            if self.auto and self.pool:
                return self._automatic(key)
        return self.map.default

    def _automatic(self, key: str) -> str:
        key = key[:MAX_SPEAKER_KEY]
        with self._lock:
            voice = self.assigned.get(key)
            if voice is not None and voice in self.pool:  # a voice removed from the library since is chosen anew
                return voice
            voice = min(self.pool, key=lambda v: self._uses[v])  # min keeps the first of equals: pool order breaks ties
            self._count(voice, 1)
            self.assigned[key] = voice
            while len(self.assigned) > MAX_SPEAKERS:  # the speaker given a voice longest ago is forgotten
                self._count(self.assigned.pop(next(iter(self.assigned))), -1)
        if self._remember is not None:
            self._remember(key, voice)
        return voice


def check_announce(template: str) -> str:
    """`--announce`: a template whose only field is {speaker} (attribute or index access would read internals)."""
    import string

    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        bad = [f for f in fields if f != "speaker"]
        if bad:
            raise ValueError(f"unknown field {{{bad[0]}}}")
        if not template.format(speaker="x").strip():
            raise ValueError("it says nothing")
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"--announce {template!r} is invalid ({exc}); e.g. '{{speaker}} says'") from None
    return template


class Announcer:
    """Puts `--announce` (e.g. "{speaker} says") before a line whose speaker is not the previous line's."""

    def __init__(self, template: str | None) -> None:
        self.template = template
        self._last: str | None = None  # the speaker of the line spoken last (None: no one in particular)

    def text(self, text: str, speaker: str | None) -> str:
        """The text to say for a line about to be spoken (lines are passed in the order they are spoken)."""
        if self.template is None:
            return text
        key = speaker_key(speaker) if speaker else None
        changed, self._last = key != self._last, key
        if not changed or speaker is None:
            return text
        said = self.template.format(speaker=speaker.strip())
        # A pause between the announcement and the line, unless the template ends in its own punctuation.
        return f"{said} {text}" if said.rstrip()[-1:] in ".,:;!?" else f"{said}: {text}"
