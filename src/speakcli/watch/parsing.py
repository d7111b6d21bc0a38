"""What a watched line says and who says it: plain text, a speaker pattern's groups, or a JSONL object."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from speakcli.errors import UsageError

InputFormat = Literal["text", "jsonl"]
# batch's JSONL fields, less its output name, plus who says the line.
JSONL_FIELDS = ("text", "voice", "language", "speed", "speaker")
# How much of a line --speaker-pattern is matched against: a speaker comes first, and an unanchored pattern such
# as '(?P<speaker>[^:]+): (?P<text>.*)' takes time quadratic in what it searches (7 s for a 40,000-character line
# of one letter, hours for a 1 MiB one). A text group that reaches this far goes on to the line's end.
PATTERN_HEAD = 2048


@dataclass(frozen=True)
class Voicing:
    """Who says a line and how: its speaker, and the voice, language and speed it asks for (None: the default)."""

    speaker: str | None = None
    voice: str | None = None
    language: str | None = None
    speed: float | None = None


@dataclass(frozen=True)
class Parsed:
    """A raw line's text to speak and its voicing; `error` says why it cannot be spoken (a bad JSONL row)."""

    text: str
    voicing: Voicing = Voicing()
    error: str | None = None


def compile_speaker_pattern(pattern: str) -> re.Pattern[str]:
    """`--speaker-pattern`: a valid regex with the named groups `speaker` and `text`."""
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise UsageError(f"--speaker-pattern {pattern!r} is not a valid regex ({exc})") from None
    missing = [g for g in ("speaker", "text") if g not in compiled.groupindex]
    if missing:
        groups = " and ".join(f"(?P<{g}>...)" for g in missing)
        raise UsageError(
            f"--speaker-pattern {pattern!r} has no {groups} group; e.g. '^(?P<speaker>[^:]{{1,32}}): (?P<text>.*)$'"
        )
    return compiled


class LineParser:
    """Reads one raw line as `--input` says: plain text (split by `--speaker-pattern` when given) or JSONL."""

    def __init__(self, input_format: InputFormat = "text", speaker_pattern: str | None = None) -> None:
        if input_format not in ("text", "jsonl"):
            raise UsageError(f"--input {input_format!r}: use text or jsonl")
        if input_format == "jsonl" and speaker_pattern is not None:
            raise UsageError("--speaker-pattern reads text lines; with --input jsonl give each line a speaker field")
        self.input_format = input_format
        self._pattern = compile_speaker_pattern(speaker_pattern) if speaker_pattern is not None else None

    def parse(self, line: str) -> Parsed:
        if self.input_format == "jsonl":
            return self._jsonl(line)
        if self._pattern is not None:
            head = line[:PATTERN_HEAD]
            m = self._pattern.search(head)
            if m is not None and m.group("text") is not None:
                speaker = (m.group("speaker") or "").strip()
                text = m.group("text") + (line[PATTERN_HEAD:] if m.end("text") == len(head) else "")
                return Parsed(text, Voicing(speaker=speaker or None))
        return Parsed(line)  # no speaker: a line the pattern does not match is said whole, in the default voice

    def _jsonl(self, line: str) -> Parsed:
        from speakcli.batch.items import jsonl_row

        if not line.strip():
            return Parsed("")
        item = jsonl_row("", line, JSONL_FIELDS)
        if item.error is not None:
            return Parsed("", error=item.error)
        speaker = item.speaker.strip() if item.speaker else None
        return Parsed(item.text, Voicing(speaker or None, item.voice, item.language, item.speed))
