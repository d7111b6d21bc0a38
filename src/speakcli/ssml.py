"""A subset of SSML (speak, p, s, break, prosody rate, say-as, sub) read into spans of text and pauses."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from speakcli.errors import UsageError

if TYPE_CHECKING:
    from speakcli.speakable import Speakable

log = logging.getLogger("speakcli")

# Break strengths as pauses (seconds); a paragraph ends with a "strong" one.
STRENGTHS = {"none": 0.0, "x-weak": 0.1, "weak": 0.25, "medium": 0.5, "strong": 0.75, "x-strong": 1.0}
MAX_BREAK = 10.0  # what common SSML services accept; a typo like time="200s" fails instead of making silence
RATES = {"x-slow": 0.5, "slow": 0.75, "medium": 1.0, "default": 1.0, "fast": 1.25, "x-fast": 1.75}
# Real SSML nests a few levels; a bound keeps a hostile document from exhausting the reader's recursion.
MAX_DEPTH = 64
_SPEAK = re.compile(r"<speak[\s>/]")
_NOT_XML_SPACE = re.compile(r"[^ \t\r\n]")
# A DOCTYPE's name and optional external id, up to its end (">") or the start of an internal subset ("[").
_LITERAL = r"""(?:"[^"]*"|'[^']*')"""
_DOCTYPE = re.compile(
    rf"<!DOCTYPE[ \t\r\n]+(?P<name>[^ \t\r\n>\[]+)"
    rf"(?:[ \t\r\n]+(?:SYSTEM[ \t\r\n]+{_LITERAL}|PUBLIC[ \t\r\n]+{_LITERAL}[ \t\r\n]+{_LITERAL}))?"
    r"[ \t\r\n]*(?P<end>[>\[])"
)
_TIME = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)")
_RATE = re.compile(r"([+-]?)(\d+(?:\.\d*)?|\.\d+)(%?)")
_SPACES = re.compile(r"\s+")
_DIGIT_GROUPS = re.compile(r"(?<=\d)[,_\s\u00a0\u202f](?=\d{3})")


@dataclass(frozen=True)
class Span:
    """Text spoken at `rate` times the chosen speed."""

    text: str
    rate: float = 1.0


@dataclass(frozen=True)
class Pause:
    """Silence of `seconds`, in place of the usual pause between sentences."""

    seconds: float


@dataclass
class Plan:
    """What to say, in order: spans of text and pauses; `ignored` names the markup that was dropped. With
    `speakable`, the spans are plain text as it came, made speakable by it (on the worker) before splitting."""

    parts: list[Span | Pause]
    ignored: list[str] = field(default_factory=list)
    speakable: Speakable | None = None


@dataclass(frozen=True)
class _Prolog:
    """What comes before a document's root element: where the root starts, and a DOCTYPE's name and whether it
    has an internal subset (then `start` is where that DOCTYPE begins, and nothing after it was read)."""

    start: int
    doctype: str | None = None
    subset: bool = False


def _prolog(text: str) -> _Prolog:
    """Skip what XML allows before the root element: a BOM, whitespace, the XML declaration, comments,
    processing instructions and a DOCTYPE. Nothing here is interpreted; it is only found and passed over."""
    i = 1 if text.startswith("\ufeff") else 0
    doctype = None
    while True:
        m = _NOT_XML_SPACE.search(text, i)
        i = m.start() if m else len(text)
        if text.startswith("<?", i):  # the XML declaration, or a processing instruction
            end, close = text.find("?>", i + 2), 2
        elif text.startswith("<!--", i):
            end, close = text.find("-->", i + 4), 3
        elif (m := _DOCTYPE.match(text, i)) is not None:
            doctype = m.group("name")
            if m.group("end") == "[":
                return _Prolog(i, doctype, subset=True)
            end, close = m.end() - 1, 1
        else:
            return _Prolog(i, doctype)
        if end < 0:
            return _Prolog(i, doctype)  # unclosed: not a prolog, so not a document
        i = end + close


def is_ssml(text: str) -> bool:
    """Whether `text` is an SSML document: a `<speak>` element, after what XML allows before it (a BOM, the XML
    declaration, comments, processing instructions, a DOCTYPE)."""
    prolog = _prolog(text)
    if prolog.subset:
        return prolog.doctype == "speak"
    return _SPEAK.match(text, prolog.start) is not None


def plain(text: str, speakable: Speakable | None = None) -> Plan:
    """Text as one span: as it is, or to be made speakable by `speakable`."""
    return Plan([Span(text)], speakable=speakable)


def speech_plan(text: str, ssml: bool | None = None, speakable: Speakable | None = None) -> Plan:
    """`text` as a plan: SSML when `ssml` is true, or when it is None and the text starts with `<speak>` (as the
    author wrote it); else plain text, made speakable by `speakable` if given."""
    if ssml is None:
        ssml = is_ssml(text)
    return parse(text) if ssml else plain(text, speakable)


def parse(text: str) -> Plan:
    """Read SSML (a `<speak>` document, or a fragment that is wrapped in one) into a plan; tags are never spoken.

    Unknown elements are dropped (their text is kept) with one warning; malformed markup, a DOCTYPE that declares
    entities and nesting past MAX_DEPTH are UsageErrors.
    """
    root = _tree(_document(text))
    reader = _Reader()
    reader.element(root, 1.0)
    plan = Plan(reader.done(), sorted(reader.ignored))
    if plan.ignored:
        log.warning("SSML: ignored %s (not supported; their text is spoken)", ", ".join(plan.ignored))
    return plan


def _document(text: str) -> str:
    """The markup the XML parser reads: the text from its root element on, wrapped in `<speak>` unless that is the
    root. The prolog before it is left out, so no DOCTYPE can declare an entity for the parser to expand."""
    prolog = _prolog(text)
    if prolog.subset:
        raise UsageError(
            "the SSML's DOCTYPE declares its own entities or elements (an internal subset, [...]), which speakcli "
            "never reads; remove the [...] part"
        )
    # The prolog's lines stay as empty lines, so the parser's line numbers are those of the text as given.
    lines = "\n" * text.count("\n", 0, prolog.start)
    if _SPEAK.match(text, prolog.start) is None:
        return f"<speak>{lines}{text[prolog.start :]}</speak>"
    return lines + text[prolog.start :]


def _tree(document: str) -> ET.Element:
    """The element tree of a `<speak>` document, nested at most MAX_DEPTH deep."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as exc:
        raise UsageError(f"the SSML is not well-formed ({exc}); fix the markup, or pass plain text") from None
    level: list[tuple[ET.Element, int]] = [(root, 1)]
    while level:  # iteratively: the reader that walks it recurses, and Python's stack is what this bound protects
        element, depth = level.pop()
        if depth > MAX_DEPTH:
            raise UsageError(f"the SSML nests elements more than {MAX_DEPTH} deep; flatten the markup")
        level.extend((child, depth + 1) for child in element)
    return root


def _tag(element: ET.Element) -> str:
    return str(element.tag).rsplit("}", 1)[-1]  # "{http://www.w3.org/2001/10/synthesis}break" -> "break"


class _Reader:
    """Walks the element tree, joining text into spans and turning breaks into pauses."""

    def __init__(self) -> None:
        self.parts: list[Span | Pause] = []
        self.ignored: set[str] = set()
        self._text: list[str] = []
        self._rate = 1.0
        self._paragraph_ended = False  # its pause is added only if more speech follows

    def text(self, text: str | None, rate: float) -> None:
        if not text:
            return
        if self._paragraph_ended and text.strip():
            self._paragraph_ended = False
            self.pause(STRENGTHS["strong"])
        if rate != self._rate:
            self.boundary()
            self._rate = rate
        self._text.append(text)

    def boundary(self) -> None:
        """End the span being built, so text on either side is never joined into one sentence."""
        joined = _SPACES.sub(" ", "".join(self._text)).strip()
        self._text = []
        if joined:
            self.parts.append(Span(joined, self._rate))

    def pause(self, seconds: float) -> None:
        self.boundary()
        self._paragraph_ended = False  # an explicit break after a paragraph is the pause there
        if self.parts and isinstance(self.parts[-1], Pause):
            self.parts[-1] = Pause(min(MAX_BREAK, self.parts[-1].seconds + seconds))
        else:
            self.parts.append(Pause(seconds))

    def done(self) -> list[Span | Pause]:
        self.boundary()
        return self.parts

    def element(self, el: ET.Element, rate: float) -> None:
        tag = _tag(el)
        if tag == "break":
            self.pause(_break_seconds(el))
            return  # a break holds no text
        if tag == "say-as":
            self.text(_say_as(el, self.ignored), rate)
            return
        if tag == "sub" and el.get("alias") is not None:
            self.text(el.get("alias"), rate)
            return
        if tag == "prosody":
            rate = rate * _rate(el.get("rate")) if el.get("rate") is not None else rate
            self.ignored.update(f"prosody {a}" for a in el.attrib if a != "rate")
        elif tag in ("p", "s", "paragraph", "sentence"):
            self.boundary()
        elif tag != "speak":
            self.ignored.add(f"<{tag}>")
        self.text(el.text, rate)
        for child in el:
            self.element(child, rate)
            self.text(child.tail, rate)
        if tag in ("p", "paragraph", "s", "sentence"):
            self.boundary()
            self._paragraph_ended = self._paragraph_ended or tag in ("p", "paragraph")


def _break_seconds(el: ET.Element) -> float:
    time, strength = el.get("time"), el.get("strength")
    if time is not None:
        m = _TIME.fullmatch(time.strip())
        if m is None:
            raise UsageError(f'SSML <break time="{time}">: give seconds or milliseconds, e.g. time="2s" or "500ms"')
        seconds = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
        if seconds > MAX_BREAK:
            raise UsageError(f'SSML <break time="{time}"> is longer than {MAX_BREAK:g} s; use several breaks')
        return seconds
    if strength is not None and strength not in STRENGTHS:
        raise UsageError(f'SSML <break strength="{strength}">: use one of {", ".join(STRENGTHS)}')
    return STRENGTHS[strength or "medium"]


def _rate(value: str | None) -> float:
    """A prosody rate as a factor: a word (slow, fast...), a percentage of the normal rate (80%), or a change
    (+20%, -10%)."""
    value = (value or "").strip()
    if value in RATES:
        return RATES[value]
    m = _RATE.fullmatch(value)
    if m is None or (m.group(1) and not m.group(3)):
        raise UsageError(
            f'SSML <prosody rate="{value}">: use x-slow, slow, medium, fast, x-fast, a percentage (80%) '
            "or a change (+20%)"
        )
    sign, number, percent = m.groups()
    if sign:
        factor = 1.0 + (float(number) if sign == "+" else -float(number)) / 100
    else:
        factor = float(number) / 100 if percent else float(number)
    if factor <= 0:
        raise UsageError(f'SSML <prosody rate="{value}"> leaves no speech; use a rate above 0')
    return factor


def _say_as(el: ET.Element, ignored: set[str]) -> str:
    text = "".join(el.itertext())
    kind = el.get("interpret-as", "")
    if kind in ("characters", "spell-out", "letters"):
        return " " + " ".join(ch for ch in text if not ch.isspace()) + " "
    if kind in ("cardinal", "number"):
        # "1,234,567" -> "1234567": the engines read plain digits as a number, grouped ones digit group by group.
        return _DIGIT_GROUPS.sub("", text.strip())
    ignored.add(f'say-as interpret-as="{kind}"')
    return text
