"""A book's text in chapters: from an EPUB's table of contents, headings or files, or from Markdown headings."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from speakcli.batch.epub import Epub

Split = Literal["line", "paragraph", "file"]
ChapterMode = Literal["auto", "heading", "file", "none"]
CHAPTER_MODES: tuple[ChapterMode, ...] = ("auto", "heading", "file", "none")

# Chapters starting at one place are named together ("Part One: Chapter 1"): at most this many, each title at most
# MAX_TITLE characters. A title is in every item's manifest row and the progress line; a hostile table of contents
# can point 80,000 entries at one place (which took 67 s to read, the names compared one by one).
MAX_JOINED = 3
MAX_TITLE = 200
_ATX = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_SETEXT = re.compile(r" {0,3}(=+|-+)[ \t]*")


@dataclass
class Section:
    """Consecutive paragraphs under one chapter title (None: not in a chapter), each with where it came from."""

    title: str | None
    paragraphs: list[tuple[str, str]] = field(default_factory=list)  # (source, text)


def heading_level(levels: Iterable[int]) -> int | None:
    """The heading level that starts chapters: the highest level used more than once (a book's one title above its
    chapters is not the level of chapters), else the highest used; None when there are no headings."""
    counts = Counter(levels)
    return next((level for level in sorted(counts) if counts[level] > 1), min(counts, default=None))


# -- EPUB ---------------------------------------------------------------------------------------------------------


def epub_sections(book: Epub, name: str, mode: ChapterMode) -> list[Section]:
    """The book's paragraphs in reading order, in chapters: at its table of contents' entries (`auto`; each
    document when it has none), its top headings (`heading`), each content document (`file`), or none."""
    blocks = [
        (f"{name}:{part.path}:{i}", block) for part in book.parts for i, block in enumerate(part.document.blocks, 1)
    ]
    starts: dict[int, list[str]] = {}  # index in `blocks` -> the titles of the chapters starting there
    offsets, total = {}, 0
    for part in book.parts:
        offsets[part.path] = total
        total += len(part.document.blocks)
    if mode == "auto" and book.toc:
        documents = {part.path: part.document for part in book.parts}
        for entry in book.toc:
            if entry.path not in documents:
                continue  # a link out of the reading order
            at = offsets[entry.path] + (documents[entry.path].marks.get(entry.anchor, 0) if entry.anchor else 0)
            titles = starts.setdefault(at, [])
            if len(titles) < MAX_JOINED and entry.title not in titles:
                titles.append(entry.title)
    elif mode in ("auto", "file"):
        for n, part in enumerate(book.parts, 1):
            doc = part.document
            heading = next((b.text for b in doc.blocks if b.heading), None)
            starts[offsets[part.path]] = [heading or doc.title or f"Part {n}"]
    elif mode == "heading":
        top = heading_level(block.heading for _, block in blocks if block.heading)
        for i, (_, block) in enumerate(blocks):
            if block.heading and top is not None and block.heading <= top:
                starts[i] = [block.text]
    leading = _clip(book.info.title or name)
    sections = [Section(None if mode == "none" else leading)]
    for i, (source, block) in enumerate(blocks):
        if i in starts:
            sections.append(Section(_clip(": ".join(starts[i]))))  # a part and its first chapter, at one place
        sections[-1].paragraphs.append((source, block.text))
    return [s for s in sections if s.paragraphs]


def _clip(title: str) -> str:
    return title if len(title) <= MAX_TITLE else title[: MAX_TITLE - 1] + "…"


# -- Markdown and plain text --------------------------------------------------------------------------------------


def paragraphs(name: str, lines: list[tuple[int, str]], split: str) -> list[tuple[str, str]]:
    """Numbered lines as (source, text) items: one per non-blank line, per paragraph (lines up to a blank one,
    joined), or all in one (`file`)."""
    if split == "file":
        text = "\n".join(line for _, line in lines)
        return [(f"{name}:{lines[0][0]}", text)] if text.strip() else []
    if split == "line":
        return [(f"{name}:{n}", line.strip()) for n, line in lines if line.strip()]
    found: list[tuple[str, str]] = []
    block: list[str] = []
    start = 0
    for n, line in [*lines, (0, "")]:
        if line.strip():
            start = start if block else n
            block.append(line.strip())
        elif block:
            found.append((f"{name}:{start}", " ".join(block)))
            block = []
    return found


def text_sections(name: str, content: str, split: str, mode: ChapterMode, title: str) -> list[Section]:
    """A text file's items: in chapters at its Markdown headings (`heading`), as one chapter (`file`), or none."""
    if mode == "heading":
        return heading_sections(name, content, split, title)
    lines = list(enumerate(content.splitlines(), 1))
    return [Section(title if mode == "file" else None, paragraphs(name, lines, split))]


def _headings(lines: list[str]) -> dict[int, tuple[int, str]]:
    """Markdown headings by line index: `# Title` (ATX) and `Title` over `===` or `---` (setext) -> (level, title).
    A setext heading's underline is mapped to (0, "") so it is not read as text."""
    found: dict[int, tuple[int, str]] = {}
    for i, line in enumerate(lines):
        if (m := _ATX.fullmatch(line)) is not None:
            found[i] = (len(m.group(1)), (m.group(2) or "").strip())
        elif (
            i > 0
            and (m := _SETEXT.fullmatch(line)) is not None
            and lines[i - 1].strip()
            and i - 1 not in found
            and _SETEXT.fullmatch(lines[i - 1]) is None
        ):
            found[i - 1] = (1 if m.group(1)[0] == "=" else 2, lines[i - 1].strip())
            found[i] = (0, "")
    return found


def heading_sections(name: str, content: str, split: str, title: str) -> list[Section]:
    """Text split at its Markdown headings: each heading is an item of its own, and those of the chapter level
    (`heading_level`) start a chapter; the text between is split per `split` (line, paragraph or file)."""
    lines = content.splitlines()
    headings = _headings(lines)
    top = heading_level(level for level, _ in headings.values() if level)
    sections = [Section(title)]
    body: list[tuple[int, str]] = []

    def flush() -> None:
        sections[-1].paragraphs.extend(paragraphs(name, body, split))
        body.clear()

    for i, line in enumerate(lines):
        if i not in headings:
            body.append((i + 1, line))
            continue
        flush()
        level, text = headings[i]
        if level and top is not None and level <= top:
            sections.append(Section(text or f"Chapter {len(sections)}"))
        if text:
            sections[-1].paragraphs.append((f"{name}:{i + 1}", text))
    flush()
    return [s for s in sections if s.paragraphs]
