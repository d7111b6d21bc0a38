"""EPUB content documents (XHTML) as plain text blocks: headings, paragraphs, list items; no markup, notes or menus."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

from speakcli.text import normalize

# Read with the standard library's HTML parser, never an XML one: it expands only HTML's own named character
# references, so no DOCTYPE can declare an entity, fetch a file or a URL, or multiply text (no XXE, no entity bombs).

BLOCKS = frozenset(
    [
        "address",
        "article",
        "aside",
        "blockquote",
        "body",
        "caption",
        "center",
        "dd",
        "details",
        "dialog",
        "div",
        "dl",
        "dt",
        "fieldset",
        "figcaption",
        "figure",
        "footer",
        "form",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "header",
        "hgroup",
        "hr",
        "legend",
        "li",
        "main",
        "ol",
        "p",
        "pre",
        "section",
        "summary",
        "table",
        "tbody",
        "td",
        "tfoot",
        "th",
        "thead",
        "tr",
        "ul",
    ]
)
# Never spoken: metadata, code, media, forms, and navigation (menus of links are not the book's text).
SKIPPED = frozenset(
    [
        "head",
        "script",
        "style",
        "nav",
        "template",
        "svg",
        "math",
        "audio",
        "video",
        "object",
        "iframe",
        "embed",
        "canvas",
        "map",
        "noscript",
        "button",
        "select",
        "textarea",
        "rt",
        "rp",
    ]
)
VOID = frozenset(
    ["area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source", "track", "wbr"]
)
# epub:type (EPUB 3 structural semantics) and role (DPUB-ARIA) values of what is not read aloud.
_SKIP_TYPES = frozenset(
    [
        "pagebreak",
        "page-list",
        "toc",
        "landmarks",
        "loi",
        "lot",
        "noteref",
        "backlink",
        "doc-pagebreak",
        "doc-pagelist",
        "doc-toc",
        "doc-noteref",
        "doc-backlink",
    ]
)
# A note's body: spoken after the rest of its document, as a printed book puts notes after the text.
_NOTE_TYPES = frozenset(["footnote", "endnote", "rearnote", "doc-footnote", "doc-endnote"])
# A link's text that only points somewhere: a note number, a symbol, a letter, a back arrow.
_MARKER = re.compile(r"[\[(]?(?:\d{1,4}[a-z]?|[a-z]|[ivxlcdm]{1,6}|[*†‡§¶#]{1,4}|[↩↑⤴^])[\])]?[.,:]?", re.I)
_BRACKETS_ONLY = re.compile(r"[\s\[\](),.;:]*")
_INVISIBLE = re.compile("[\u00ad\u200b\u2060\ufeff]")  # soft hyphens, zero-width spaces, word joiners, BOMs
_HEADING = re.compile(r"h([1-6])")
# A DOCTYPE with an internal subset ([...]): the HTML parser would end it at the first ">" inside and read the rest
# as text, so it is cut whole first (and what it declares is never used). Found by plain searches from the first
# "<!DOCTYPE" only: a lazy regex retried at every "<!DOCTYPE" of a hostile file takes quadratic time.
_DOCTYPE = re.compile(r"<!DOCTYPE", re.I)
_SUBSET_END = re.compile(r"\]\s*>")


@dataclass
class Block:
    """One paragraph of text; `heading` is 1-6 for a heading (h1-h6), else 0."""

    text: str
    heading: int = 0


@dataclass
class Document:
    """A content document's text: its blocks in reading order (notes last), its <title>, and where each asked-for
    element id is: the index of the first block at or after it."""

    blocks: list[Block] = field(default_factory=list)
    title: str | None = None
    marks: dict[str, int] = field(default_factory=dict)


def clean(text: str) -> str:
    """Whitespace collapsed, invisible characters gone, control characters (a terminal's escapes) made spaces: an
    HTML parser passes them through, and a title goes to the terminal, the M4B and the chapters file."""
    return normalize(_INVISIBLE.sub("", text))


class TooManyBlocks(Exception):
    """A document holds more paragraphs than the reader was allowed to keep."""


def read_xhtml(markup: str, targets: frozenset[str] = frozenset(), max_blocks: int | None = None) -> Document:
    """The text of one content document; `targets` are element ids (table of contents anchors) to locate. Past
    `max_blocks` paragraphs, `TooManyBlocks` (each is kept, and becomes an item: memory)."""
    reader = _Reader(targets, max_blocks)
    reader.feed(_without_subset(markup))
    reader.close()
    return reader.document()


def _without_subset(markup: str) -> str:
    """`markup` with its first DOCTYPE cut when that has an internal subset; linear in its length."""
    doctype = _DOCTYPE.search(markup)
    if doctype is None:
        return markup
    bracket, close = markup.find("[", doctype.end()), markup.find(">", doctype.end())
    if bracket < 0 or 0 <= close < bracket:
        return markup  # no subset: the HTML parser reads the DOCTYPE
    end = _SUBSET_END.search(markup, bracket)
    return markup if end is None else markup[: doctype.start()] + markup[end.end() :]


@dataclass
class _Inline:
    """A link or superscript whose text is held until its end: a note marker is dropped whole."""

    tag: str
    href: str | None
    parts: list[str] = field(default_factory=list)
    dropped_link: bool = False


def _tokens(attrs: dict[str, str | None], *names: str) -> set[str]:
    return {t for name in names for t in (attrs.get(name) or "").lower().split()}


class _Reader(HTMLParser):
    def __init__(self, targets: frozenset[str], max_blocks: int | None = None) -> None:
        super().__init__(convert_charrefs=True)
        self.targets = targets
        self.max_blocks = max_blocks
        self.blocks: list[Block] = []
        self.notes: list[Block] = []
        self.marks: dict[str, int] = {}
        self.open: list[tuple[str, bool, bool]] = []  # (tag, skipped, note) of each element not yet closed
        self.open_tags: dict[str, int] = {}  # how many of each tag are open: a stray end tag is found in O(1)
        self.skipping = 0  # how many open elements are not spoken
        self.in_note = 0
        self.parts: list[str] = []
        self.heading = 0
        self.inline: list[_Inline] = []
        self.title: list[str] | None = None
        self.title_text: str | None = None

    # -- text ----------------------------------------------------------------------------------------------------
    def handle_data(self, data: str) -> None:
        if self.title is not None:
            self.title.append(data)
        if self.skipping:
            return
        (self.inline[-1].parts if self.inline else self.parts).append(data)

    def flush(self) -> None:
        """End the block being read (at a block element's start or end)."""
        for inline in self.inline:  # a block inside a link: the link's text is plain text
            self.parts += inline.parts
        self.inline.clear()
        text = clean("".join(self.parts))
        self.parts = []
        if text:
            (self.notes if self.in_note else self.blocks).append(Block(text, self.heading))
            if self.max_blocks is not None and len(self.blocks) + len(self.notes) > self.max_blocks:
                raise TooManyBlocks

    # -- elements ------------------------------------------------------------------------------------------------
    def handle_starttag(self, tag: str, attr_list: list[tuple[str, str | None]]) -> None:
        attrs = dict(attr_list)
        anchor = attrs.get("id") or (attrs.get("name") if tag == "a" else None)
        if anchor is not None and anchor in self.targets:
            self.flush()  # a chapter starts here
            self.marks.setdefault(anchor, len(self.blocks))
        if tag == "title" and self.title_text is None:
            self.title = []
        if tag in VOID:
            if tag == "br" and not self.skipping:
                self.handle_data(" ")
            elif tag == "hr":
                self.flush()
            return
        types = _tokens(attrs, "epub:type", "role")
        skipped = tag in SKIPPED or bool(types & _SKIP_TYPES) or "hidden" in attrs or attrs.get("aria-hidden") == "true"
        note = bool(types & _NOTE_TYPES) and not self.skipping
        if tag in BLOCKS or note:
            self.flush()
        if (m := _HEADING.fullmatch(tag)) is not None and not self.heading:
            self.heading = int(m.group(1))
        self.open.append((tag, skipped, note))
        self.open_tags[tag] = self.open_tags.get(tag, 0) + 1
        self.skipping += skipped
        self.in_note += note
        if tag in ("a", "sup") and not self.skipping:
            self.inline.append(_Inline(tag, attrs.get("href")))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:  # XHTML's <a id="x"/> or <span epub:type="pagebreak" .../>: opened and closed at once
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self.title is not None:
            self.title_text = clean("".join(self.title)) or None
            self.title = None
        if not self.open_tags.get(tag):
            return  # a stray end tag: HTML parsers ignore it too
        while self.open:  # close what was left open inside it, as an HTML parser would
            open_tag, skipped, note = self.open.pop()
            self.open_tags[open_tag] -= 1
            self.skipping -= skipped
            if self.inline and self.inline[-1].tag == open_tag and not self.skipping:
                self._end_inline(self.inline.pop())
            if open_tag in BLOCKS or note:
                self.flush()
            if _HEADING.fullmatch(open_tag):
                self.heading = 0
            self.in_note -= note
            if open_tag == tag:
                break

    def _end_inline(self, inline: _Inline) -> None:
        text = "".join(inline.parts)
        words = clean(text)
        if inline.tag == "a" and inline.href and "#" in inline.href and _MARKER.fullmatch(words):
            if self.inline:
                self.inline[-1].dropped_link = True
            return  # a note marker or a back link: a number to see, not to hear
        if inline.tag == "sup" and inline.dropped_link and _BRACKETS_ONLY.fullmatch(words):
            return  # what was left of a marker: its brackets
        (self.inline[-1].parts if self.inline else self.parts).append(text)

    def document(self) -> Document:
        while self.open:
            self.handle_endtag(self.open[-1][0])
        self.flush()
        return Document(self.blocks + self.notes, self.title_text, self.marks)
