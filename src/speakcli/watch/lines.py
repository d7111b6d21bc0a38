"""Lines as the daemon handles them: read from a file, filtered, split into pieces an engine can say."""

from __future__ import annotations

import codecs
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from speakcli.errors import UsageError
from speakcli.watch.follower import RawLine
from speakcli.watch.parsing import LineParser, Parsed, Voicing


class Caster(Protocol):
    """Chooses the voice a line is said in (see casting.Casting)."""

    def voice_for(self, voicing: Voicing) -> str | None: ...


@dataclass
class Line:
    """One line read from a file, in order; `skip` says why it will not be spoken."""

    seq: int
    text: str
    path: Path
    start: int
    end: int
    inode: tuple[int, int]
    read_at: float  # time.monotonic()
    read_wall: float
    skip: str | None = None
    head: bytes = b""  # see RawLine.head
    voicing: Voicing = field(default_factory=Voicing)  # who says it, and what it asks for
    voice: str | None = None  # the voice chosen for it (None: the default voice)
    jumped: int = 0  # > 0: this stands for that many lines skipped through at once (see Follower.skip_backlog)
    cut: str | None = None  # why a control command dropped it after it was queued ("skip", "cleared")


def check_encoding(name: str) -> str:
    """The codec name, if lines can be split on b"\\n" in it (UTF-8 and single-byte encodings)."""
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise UsageError(f"unknown encoding {name!r}; use e.g. utf-8, latin-1, cp1252") from None
    if "\n".encode(info.name) != b"\n":
        raise UsageError(f"encoding {name!r} is not line-compatible (UTF-16/32); convert the file to UTF-8")
    return info.name


class LineMaker:
    """Turns raw lines into numbered Lines: says which to skip and why, and splits long ones into pieces."""

    def __init__(
        self,
        max_chars: int = 500,
        long_lines: Literal["split", "truncate"] = "split",
        ignore_prefixes: tuple[str, ...] = (),
        skip_regex: str | None = None,
        parser: LineParser | None = None,
        casting: Caster | None = None,
    ) -> None:
        self.max_chars = max_chars
        self.long_lines = long_lines
        self.ignore_prefixes = ignore_prefixes
        self._skip_re = re.compile(skip_regex) if skip_regex else None
        self.parser = parser or LineParser()
        self.casting = casting
        self._seq = 0
        self._line_skip: dict[Path, str | None] = {}  # why the line whose later parts are still coming is skipped
        self._line_voice: dict[Path, tuple[Voicing, str | None]] = {}  # the voicing of a line still coming in parts

    def lines(self, raw: RawLine) -> Iterator[Line]:
        """The Lines of one raw line, made lazily: a stop must not wait for a 1 MB line to be split whole."""
        now, wall = time.monotonic(), time.time()
        # A later part of an over-long line is text only: it keeps the voice its line's first part chose.
        parsed = self.parser.parse(raw.text) if raw.part == 0 else Parsed(raw.text)
        text = parsed.text.strip()
        skip = self._skip_reason(raw, text, parsed.error)
        if raw.part == 0:
            voice = self.casting.voice_for(parsed.voicing) if self.casting and skip is None else parsed.voicing.voice
            self._line_voice[raw.path] = (parsed.voicing, voice)
        voicing, voice = self._line_voice.get(raw.path, (Voicing(), None))
        pieces = self._pieces(text) if skip is None else iter([text])
        held = next(pieces, text)
        for piece in pieces:
            yield self._line(raw, held, raw.start, skip, now, wall, voicing, voice)
            held = piece
        # Only the last piece carries the line's end offset: a restart mid-line repeats the line, never skips it.
        yield self._line(raw, held, raw.end, skip, now, wall, voicing, voice)

    def _skip_reason(self, raw: RawLine, text: str, error: str | None) -> str | None:
        from speakcli.text import has_speech

        skip = None
        if raw.part > 0:  # a later part of an over-long line: skipped if the line is, cut off if truncating
            skip = self._line_skip.get(raw.path) or ("truncated" if self.long_lines == "truncate" else None)
            if skip is None and not text:
                skip = "empty"
        elif error is not None:
            skip = f"error: {error}"  # a JSONL row batch would refuse, with batch's words
        elif not text:
            skip = "empty"
        elif any(text.startswith(p) for p in self.ignore_prefixes):
            skip = "ignored prefix"
        elif self._skip_re is not None and self._skip_re.search(text):
            skip = "skip regex"
        elif not has_speech(text):
            skip = "nothing to say"  # only punctuation or symbols: an engine would make noise of it
        if raw.part == 0:
            self._line_skip[raw.path] = None if skip == "empty" else skip
        return skip

    def _line(
        self,
        raw: RawLine,
        text: str,
        end: int,
        skip: str | None,
        now: float,
        wall: float,
        voicing: Voicing,
        voice: str | None,
    ) -> Line:
        self._seq += 1
        return Line(self._seq, text, raw.path, raw.start, end, raw.inode, now, wall, skip, raw.head, voicing, voice)

    def jump(self, raw: RawLine) -> Line:
        """The one Line that stands for the `raw.skipped` lines skipped through at once (see Follower.skip_backlog)."""
        line = self._line(raw, "", raw.end, "overflow", time.monotonic(), time.time(), Voicing(), None)
        line.jumped = raw.skipped
        self._line_skip[raw.path] = None  # the jump lands at a line's start: no part of a line before it goes on
        return line

    def _pieces(self, text: str) -> Iterator[str]:
        limit = self.max_chars
        if len(text) <= limit:
            yield text
        elif self.long_lines == "truncate":
            yield text[:limit]
        else:
            from speakcli.text import has_speech, split_text

            for window in _windows(text, max(4096, 8 * limit)):
                # A piece with no letter or digit is not said: engines vocalise such pieces as noise.
                yield from (p for p in split_text(window, "en", limit) if has_speech(p))


def _windows(text: str, size: int) -> Iterator[str]:
    """`text` in runs of at most `size` characters, cut after a sentence's end where there is one, else at a space."""
    pos = 0
    while len(text) - pos > size:
        window = text[pos : pos + size]
        cut = max(window.rfind(". "), window.rfind("! "), window.rfind("? "))
        if cut < size // 2:
            cut = window.rfind(" ")
        cut = cut + 1 if cut > 0 else size
        yield text[pos : pos + cut]
        pos += cut
    yield text[pos:]
