"""Batch inputs: items from text, JSONL, CSV or EPUB files, in chapters; bad rows fail alone, empty ones are skipped."""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from speakcli import jsontext
from speakcli.audio.audiobook import Tags
from speakcli.batch.epub import BookInfo, read_epub
from speakcli.batch.sections import ChapterMode, Section, Split, epub_sections, text_sections
from speakcli.errors import UnknownLanguageError, UsageError
from speakcli.text import has_speech

if TYPE_CHECKING:
    from speakcli.service import SpeechService

log = logging.getLogger("speakcli")

InputFormat = Literal["auto", "text", "jsonl", "csv", "epub"]
FIELDS = ("text", "voice", "language", "out", "speed")
_STRINGS = ("voice", "language", "out", "speaker")  # the optional fields that hold a string


@dataclass
class Item:
    """One thing to speak, where it came from, and (once planned) where its audio goes."""

    index: int
    source: str
    text: str = ""
    voice: str | None = None
    language: str | None = None
    out: str | None = None
    speed: float | None = None
    speaker: str | None = None  # who says it (watch's JSONL lines; batch has no such field)
    error: str | None = None  # a bad row: fails on its own, the run goes on
    skip: str | None = None  # why there is nothing to make (empty, only punctuation)
    output: str | None = None  # the file name inside the output folder
    key: str = ""  # a hash of everything that decides the audio; resume re-makes an item when it changes
    chapter: int | None = None  # its chapter's number, from 1 over all inputs; None when the input has none
    chapter_title: str | None = None


@dataclass
class Book:
    """A batch's items, and what its first EPUB says about itself (title, author, language, cover)."""

    items: list[Item]
    info: BookInfo = field(default_factory=BookInfo)
    source: str | None = None  # the EPUB that `info` is from

    def tags(self, title: str | None, author: str | None, cover: Path | None) -> Tags:
        """The joined file's tags: the given ones, else the book's own. A given cover that cannot be read is a
        usage error; the book's own is left out with a warning (the audio is what matters)."""
        from speakcli.audio.audiobook import cover_image

        image = None
        if cover is not None:
            try:
                data = cover.read_bytes()
            except OSError as exc:
                raise UsageError(f"cannot read cover image {cover} ({exc.strerror or exc})") from None
            image = cover_image(data, str(cover))
        elif self.info.cover is not None:
            try:
                image = cover_image(self.info.cover.data, f"the cover of {self.source}")
            except UsageError as exc:
                log.warning("%s; the audiobook has no cover", exc)
        return Tags(title or self.info.title, author or self.info.author, image)

    def check_language(self, service: SpeechService) -> None:
        """Refuse now, in one line, a book whose own language the engine does not speak (its items carry it)."""
        lang = self.info.language
        if lang is None or not any(item.language == lang for item in self.items):
            return
        try:
            service.options(lang)
        except UnknownLanguageError:
            raise UsageError(
                f"{self.source} is in {lang!r}, which the {service.engine.name} engine does not speak "
                f"(it speaks {', '.join(service.engine.languages())}); pass --language to read it in one of those"
            ) from None


def input_format(path: str, fmt: InputFormat) -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".epub": "epub"}.get(suffix, "text")


def _read_source(path: str, stdin: io.TextIOBase | None) -> tuple[str, str]:
    if path == "-":
        if stdin is None:
            raise UsageError("'-' reads stdin, but there is none")
        return "stdin", stdin.read()
    p = Path(path)
    try:
        return p.name, p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"input file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read input file {path} ({exc}); give UTF-8 text, JSONL, CSV or an EPUB") from None


def _row_item(source: str, row: dict[str, Any], fields: tuple[str, ...] = FIELDS) -> Item:
    item = Item(index=0, source=source)
    unknown = sorted(set(row) - set(fields))
    if unknown:
        item.error = f"unknown field(s) {', '.join(unknown)}; use {', '.join(fields)}"
        return item
    text = row.get("text")
    if text is None:
        item.error = "no text"
        return item
    if not isinstance(text, str):
        item.error = "text must be a string"
        return item
    item.text = text
    for name in (f for f in _STRINGS if f in fields):
        value = row.get(name)
        if value not in (None, ""):
            if not isinstance(value, str):
                item.error = f"{name} must be a string"
                return item
            setattr(item, name, value)
    speed = row.get("speed")
    if speed not in (None, ""):
        try:
            item.speed = float(speed)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            item.error = f"speed {speed!r} is not a number"
    return item  # the speed's range is checked with the run's settings (`plan.resolve_settings`)


def jsonl_row(source: str, line: str, fields: tuple[str, ...] = FIELDS) -> Item:
    """One JSONL line as an item (index 0), or one carrying the error that makes it unusable (named by `source`).

    `fields` are those a row may have: batch's FIELDS; `watch --input jsonl` takes a speaker instead of an out.
    """
    try:
        row = jsontext.loads(line)
    except json.JSONDecodeError as exc:
        return Item(0, source, error=f"invalid JSON at column {exc.colno} ({exc.msg})")
    if not isinstance(row, dict):
        return Item(0, source, error="not a JSON object")
    return _row_item(source, row, fields)


def _jsonl_items(name: str, content: str) -> Iterator[Item]:
    # Each line stands alone: a bad one fails on its own (named by its line), the others are still made.
    for lineno, line in enumerate(content.splitlines(), 1):
        if line.strip():
            yield jsonl_row(f"{name}:{lineno}", line)


def _csv_items(name: str, content: str) -> list[Item]:
    """Rows by the csv module's rules; a row that does not fit the header refuses the whole file, naming it.

    A row with more fields than the header is almost always an unquoted comma: its columns cannot be trusted,
    and keeping only the first field would cut text silently.
    """
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for row in reader:
            if row:  # a blank line reads as []
                rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise UsageError(
            f"{name}:{line}: not valid CSV ({exc}); quote fields that hold commas, quotes or newlines"
        ) from None
    if not rows:
        raise UsageError(f"{name} is empty; give a header line (e.g. text,voice) and rows")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    unknown = sorted(set(header) - set(FIELDS))
    if unknown or "text" not in header:
        what = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'text' column"
        raise UsageError(f"{name}:{header_line}: {what}; columns may be {', '.join(FIELDS)}")
    doubled = sorted({h for h in header if header.count(h) > 1})
    if doubled:
        raise UsageError(f"{name}:{header_line}: column(s) {', '.join(doubled)} given twice")
    misfits = [(lineno, len(row)) for lineno, row in rows[1:] if len(row) != len(header)]
    if misfits:
        lineno, n = misfits[0]
        more = f" (also line(s) {', '.join(str(m[0]) for m in misfits[1:6])}{', ...' if len(misfits) > 6 else ''})"
        hint = (
            'quote text that holds a comma ("Hello, world")'
            if n > len(header)
            else "give every column a field (an empty one is just its comma)"
        )
        raise UsageError(
            f"{name}:{lineno}: {n} field(s), but the header has {len(header)}{more if len(misfits) > 1 else ''}; {hint}"
        )
    return [_row_item(f"{name}:{lineno}", dict(zip(header, row, strict=True))) for lineno, row in rows[1:]]


def read_items(
    inputs: list[str],
    split: Split = "line",
    fmt: InputFormat = "auto",
    stdin: io.TextIOBase | None = None,
    chapters: ChapterMode = "auto",
) -> list[Item]:
    """Every item of every input (see `read_book`)."""
    return read_book(inputs, split, fmt, stdin, chapters).items


def read_book(
    inputs: list[str],
    split: Split = "line",
    fmt: InputFormat = "auto",
    stdin: io.TextIOBase | None = None,
    chapters: ChapterMode = "auto",
    book_language: bool = True,
) -> Book:
    """Every item of every input, numbered from 1 in input order, in chapters numbered from 1; bad rows carry
    their error, empty ones a skip. An EPUB's items are its paragraphs, in the language it gives when
    `book_language` (the command gave none). Inputs with no item at all are a usage error: there is nothing to run.

    Chapters (`chapters`): `auto` an EPUB's table of contents, none for other inputs; `heading` an EPUB's or a
    text's (Markdown) top headings; `file` each input file (each of an EPUB's documents); `none`.
    """
    items: list[Item] = []
    book = Book(items)
    numbers: dict[tuple[int, int], int] = {}  # (input, its section) -> chapter number
    for n, path in enumerate(inputs):
        kind = input_format(path, fmt)
        if kind == "epub":
            if path == "-":
                raise UsageError("an EPUB is read from its file, not from stdin; give its path")
            epub = read_epub(Path(path))
            sections = epub_sections(epub, Path(path).name, chapters)
            if book.source is None:
                book.info, book.source = epub.info, Path(path).name
            language = epub.info.language if book_language else None
            for s, section in enumerate(sections):
                found = [Item(0, source, text, language=language) for source, text in section.paragraphs]
                items += _in_chapter(found, section, numbers, (n, s))
            continue
        name, content = _read_source(path, stdin)
        stem = Path(name).stem
        if kind == "text":
            for s, section in enumerate(text_sections(name, content, split, chapters, stem)):
                items += _in_chapter(
                    [Item(0, *paragraph) for paragraph in section.paragraphs], section, numbers, (n, s)
                )
            continue
        rows = list(_jsonl_items(name, content)) if kind == "jsonl" else _csv_items(name, content)
        items += _in_chapter(rows, Section(stem if chapters == "file" else None), numbers, (n, 0))
    if not items:
        raise UsageError("the input has no items to speak")
    for i, item in enumerate(items, 1):
        item.index = i
        if item.error is None:
            # Engines vocalise punctuation-only text as noise; nothing is lost by not saying it.
            if not item.text.strip():
                item.skip = "empty"
            elif not has_speech(item.text):
                item.skip = "nothing to say (only punctuation or symbols)"
    return book


def _in_chapter(
    items: list[Item], section: Section, numbers: dict[tuple[int, int], int], key: tuple[int, int]
) -> list[Item]:
    """`items`, placed in `section`'s chapter (numbered in order of appearance), if it is one."""
    if section.title is not None and items:
        number = numbers.setdefault(key, len(numbers) + 1)
        for item in items:
            item.chapter, item.chapter_title = number, section.title
    return items
