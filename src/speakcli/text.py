"""Split text into sentences that fit an engine's per-language character limit, never dropping a word."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

# XTTS v2's per-language limits (coqui's tokenizer warns past them and truncates audio).
XTTS_CHAR_LIMITS: dict[str, int] = {
    "en": 250,
    "de": 253,
    "fr": 273,
    "es": 239,
    "it": 213,
    "pt": 203,
    "pl": 224,
    "zh": 82,
    "ar": 166,
    "cs": 186,
    "ru": 182,
    "nl": 251,
    "tr": 226,
    "ja": 71,
    "hu": 224,
    "ko": 95,
    "hi": 150,
}
DEFAULT_LIMIT = 250
# Languages pysbd has rules for; the others use its English rules, which split on the same punctuation.
_PYSBD_LANGS = {
    "en",
    "hi",
    "mr",
    "zh",
    "es",
    "am",
    "ar",
    "hy",
    "bg",
    "ur",
    "ru",
    "pl",
    "fa",
    "nl",
    "da",
    "fr",
    "my",
    "el",
    "it",
    "ja",
    "de",
    "kk",
    "sk",
}
_CLAUSE_RE = re.compile(r"(?<=[,;:\u2014\u2013\u3001\uff0c\uff1b])\s*")
_SPACE_RE = re.compile(r"\s+")
# Terminal escape sequences (colours in a log), then C0/C1 controls (NUL included) except the whitespace
# ones, which normalize() turns into spaces.
_CONTROL_RE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_PARAGRAPH_RE = re.compile(r"\n[ \t\r\f\v]*\n")
# pysbd's cost grows faster than linearly with its input: it only ever sees windows this long.
WINDOW = 2000


def clean(text: str) -> str:
    """Text with control characters (NUL, escape, ...) replaced by spaces: engines choke on them, nobody says them."""
    return _CONTROL_RE.sub(" ", text)


def normalize(text: str) -> str:
    """Remove control characters, collapse all whitespace (newlines included) to single spaces, strip the ends."""
    return _SPACE_RE.sub(" ", clean(text)).strip()


def has_speech(text: str) -> bool:
    """Whether `text` holds anything to say: a letter or a digit in any script, not only punctuation or symbols."""
    return any(unicodedata.category(ch)[0] in "LN" for ch in text)


def base_language(language: str) -> str:
    """The language without its region: "en-US" -> "en", "zh-cn" -> "zh"; the one place codes are normalised."""
    return language.strip().lower().split("-")[0].split("_")[0]


def char_limit(language: str) -> int:
    return XTTS_CHAR_LIMITS.get(base_language(language), DEFAULT_LIMIT)


@lru_cache(maxsize=32)
def _segmenter(language: str):  # type: ignore[no-untyped-def]
    import pysbd

    lang = base_language(language)
    return pysbd.Segmenter(language=lang if lang in _PYSBD_LANGS else "en", clean=False, char_span=True)


def _sentences_in(text: str, language: str) -> list[str]:
    """pysbd's sentences of one normalised window, taken by our own cursor so no character is lost or repeated."""
    spans = _segmenter(language).segment(text)
    out: list[str] = []
    pos = 0
    for span in spans:
        # pysbd's spans can skip or overlap characters at odd input; take text by our own cursor instead.
        end = max(span.end, pos)
        if end > pos:
            out.append(text[pos:end])
            pos = end
    if pos < len(text):
        out.append(text[pos:])
    return [s for s in out if s.strip()]


def sentence_ends(text: str, language: str = "en") -> list[int]:
    """Where the segmenter ends each sentence of raw `text`, as offsets (trailing spaces included); keep it short."""
    return [span.end for span in _segmenter(language).segment(text)]


def _windowed(paragraph: str, language: str) -> Iterator[str]:
    """Sentences of a paragraph of any length in linear time: pysbd runs on bounded windows.

    The last sentence of a window may be cut by the window's end, so it is carried into the next window.
    When that sentence fills more than half the window it is far longer than any engine limit anyway:
    it is cut at the window's last space, so each step advances at least half a window.
    """
    rest = paragraph
    while len(rest) > WINDOW:
        window = rest[:WINDOW]
        found = _sentences_in(window, language)
        carried = len(found[-1]) if found else len(window)
        if carried <= WINDOW // 2:
            yield from found[:-1]
            rest = rest[WINDOW - carried :]
        else:
            cut = window.rfind(" ", WINDOW // 2)
            cut = cut if cut > 0 else WINDOW
            yield from _sentences_in(window[:cut], language)
            rest = rest[cut:]
    if rest.strip():
        yield from _sentences_in(rest, language)


def sentences(text: str, language: str = "en") -> list[str]:
    """Sentences of normalised text; blank lines end a sentence, and long paragraphs are segmented in windows."""
    out: list[str] = []
    for paragraph in _PARAGRAPH_RE.split(text):
        paragraph = normalize(paragraph)
        if paragraph:
            out.extend(s.strip() for s in _windowed(paragraph, language))
    return [s for s in out if s]


def _pack(parts: list[str], limit: int, joiner: str) -> list[str]:
    """Greedily join consecutive parts while the result stays within limit."""
    out: list[str] = []
    current = ""
    for part in parts:
        candidate = f"{current}{joiner}{part}" if current else part
        if len(candidate) <= limit:
            current = candidate
        else:
            if current:
                out.append(current)
            current = part
    if current:
        out.append(current)
    return out


def _split_long(sentence: str, limit: int) -> list[str]:
    if len(sentence) <= limit:
        return [sentence]
    clauses = [c for c in _CLAUSE_RE.split(sentence) if c]
    pieces: list[str] = []
    for clause in _pack(clauses, limit, " "):
        if len(clause) <= limit:
            pieces.append(clause)
            continue
        words: list[str] = []
        for word in clause.split(" "):
            # A "word" longer than the limit (a URL, CJK text without spaces) is cut where it must be.
            words.extend(word[i : i + limit] for i in range(0, len(word), limit))
        pieces.extend(_pack(words, limit, " "))
    return pieces


def split_text(text: str, language: str = "en", limit: int | None = None) -> list[str]:
    """Sentences of `text`, each at most `limit` characters (default: the XTTS limit for the language)."""
    limit = limit or char_limit(language)
    out: list[str] = []
    for sentence in sentences(text, language):
        out.extend(_split_long(sentence, limit))
    return out
