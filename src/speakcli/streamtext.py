"""Text that arrives in pieces (a language model's reply), handed on a sentence at a time as each is complete."""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from functools import partial

from speakcli.errors import LimitError
from speakcli.readaloud import MarkdownReader
from speakcli.speakable import Speakable
from speakcli.text import has_speech, normalize, sentence_ends

# A sentence ending in "." (or "…") and a space is handed on once the text pauses this long: only the next word
# tells "He left. " from "Dr. ", and waiting for it would keep a finished sentence unspoken while a model thinks.
QUIET_SECONDS = 0.4
MAX_OPEN = 1000  # characters without a sentence end before text is handed on at a space all the same
CONTEXT = 100  # characters before a possible sentence end that the segmenter sees to judge it
LOOKAHEAD = 40  # and at most this many after it (the next word)
WINDOW = 2000  # most characters handed to the segmenter at once: its cost grows faster than their number
PROBE = "Then"  # after a pause, an end is judged as if this word followed: "He left. Then" splits, "Dr. Then" not
_TAIL = 16  # characters before a new piece that are scanned again: an end may straddle two pieces

# An end: terminal marks and closing quotes, then a space (the space may come with the next piece); a full-width
# stop (no space follows in Chinese or Japanese); a newline. With "?" or "!" (or full-width, or a newline) it is
# certain; with "." or "…" alone only the text around it tells ("Dr. Smith", "e.g. this", "3. Then").
_END = re.compile(r"""(?P<marks>[.…?!‼⁇⁈⁉]+)["'”’»)\]]{0,4}(?=\s)|[。！？]+[」』”’）]{0,4}|\n""")
_CERTAIN_MARKS = frozenset("?!‼⁇⁈⁉")
_CERTAIN_AT_END = re.compile(r"""[?!‼⁇⁈⁉]+["'”’»)\]]{0,4}\s*$""")
_NEXT_WORD = re.compile(r"\s*\S+\s")
_LEADING_SPACE = re.compile(r"\s*")

_XML_SPACE = " \t\r\n\ufeff"  # and a byte order mark, which may come first
_PROLOG = ("<?", "<!--", "<!DOCTYPE", "<speak")

Segmenter = Callable[[str], list[int]]  # the offsets where sentences of a short text end


def ssml_start(text: str) -> bool | None:
    """Whether streamed text is an SSML document (`<speak>` after spaces, a byte order mark, an XML declaration,
    comments or a DOCTYPE): True or False once its start tells, None while it may still be either."""
    at, size = 0, len(text)
    while True:
        while at < size and text[at] in _XML_SPACE:
            at += 1
        if at == size:
            return None
        if text.startswith("<?", at):
            end = text.find("?>", at + 2)
            at = end + 2
        elif text.startswith("<!--", at):
            end = text.find("-->", at + 4)
            at = end + 3
        elif text.startswith("<!DOCTYPE", at):
            close, subset = text.find(">", at), text.find("[", at)
            if subset >= 0 and (close < 0 or subset < close):  # an internal subset: its own `>` come first
                subset_end = text.find("]", subset)
                close = text.find(">", subset_end) if subset_end >= 0 else -1
            end = close
            at = end + 1
        elif text.startswith("<speak", at):
            return None if at + 6 == size else text[at + 6] in " \t\r\n>/"
        else:
            rest = text[at : at + 9]
            return None if any(form.startswith(rest) for form in _PROLOG) else False
        if end < 0:
            return None


class TextStream:
    """Streamed text in, complete sentences out: `feed` returns those a piece completed, `quiet` those a pause
    did, `finish` the rest. The work for a piece is bounded by its length, whatever came before it.

    A sentence is complete at "?", "!" or a newline; at "." once the next word shows that it was no abbreviation
    or number ("Dr. Smith", "3. Then"), or once the text pauses (`quiet`). Past `MAX_OPEN` characters without an
    end, text is handed on at a space. Sentences with nothing to say ("...") are dropped.

    With `speakable`, plain text is made speakable as it comes (Markdown read aloud, a list item or heading a
    sentence of its own, then the lexicon on each sentence), so the sentences need no more of that.

    Text that starts as an SSML document is collected whole, up to `limit` characters, and handed on as it came at
    `finish`: markup cut into sentences would not be well-formed. Not thread-safe: one caller at a time.
    """

    def __init__(
        self,
        language: str = "en",
        limit: int = 4096,
        segmenter: Segmenter | None = None,
        speakable: Speakable | None = None,
    ) -> None:
        self.limit = limit
        self._speakable = speakable  # plain text is made speakable as it comes: Markdown spans pieces
        self._reader: MarkdownReader | None = None
        self.max_open = min(MAX_OPEN, limit)
        self._ends: Segmenter = segmenter or partial(sentence_ends, language=language)
        self._mode: str | None = None  # "plain" or "ssml", once the start tells
        self._head = ""  # text kept while its start cannot tell, then the whole SSML document
        self._ssml: list[str] = []
        self._ssml_size = 0
        self._open = ""  # plain text not yet handed on
        self._seen = 0  # the last end found in `_open` (each is found once)
        self._maybe: list[tuple[int, int]] = []  # ends at "." in `_open` not yet judged: (after the marks, cut)
        self._quiet_judged = False  # the open text was judged at a pause and has not changed since

    @property
    def pending(self) -> int:
        """Characters kept: not yet handed on."""
        held = self._reader.pending if self._reader is not None else 0
        return len(self._head) + self._ssml_size + len(self._open) + held

    @property
    def ssml(self) -> bool:
        return self._mode == "ssml"

    @property
    def waits_for_quiet(self) -> bool:
        """Whether a pause in the text could complete the open sentence (see `quiet`)."""
        if self._mode != "plain" or self._quiet_judged:
            return False
        if self._reader is not None and self._reader.holding:
            return True
        if self._maybe and not self._open[self._maybe[-1][1] :].strip():
            return True
        return _CERTAIN_AT_END.search(self._open, max(0, len(self._open) - _TAIL)) is not None

    def feed(self, text: str) -> list[str]:
        """Take a piece of text; the sentences it completed."""
        if not text:
            return []
        self._quiet_judged = False
        if self._mode == "ssml":
            self._collect(text)
            return []
        if self._mode == "plain":
            return self._plain(text)
        # Spaces before anything else say nothing either way; drop them so a stream of spaces keeps nothing.
        head = (self._head + text) if self._head else text.lstrip(_XML_SPACE)
        kind = ssml_start(head)
        if kind is None:
            if len(head) > self.limit:
                raise self._too_long()
            self._head = head
            return []
        self._head = ""
        if kind:
            self._mode = "ssml"
            self._collect(head)
            return []
        self._mode = "plain"
        self._reader = self._speakable.reader() if self._speakable is not None else None
        return self._plain(head)

    def quiet(self) -> list[str]:
        """The text has paused: the open sentence if it ends in "?" or "!", or in "." and a space that the
        segmenter would not join to a following word (as it joins "Dr." to any name)."""
        if not self.waits_for_quiet:
            return []
        # A list item whose line ended ends at a pause too (its next line might have gone on with it).
        pieces = self._scan(self._reader.pause()) if self._reader is not None else []
        self._quiet_judged = True
        if _CERTAIN_AT_END.search(self._open, max(0, len(self._open) - _TAIL)):
            return pieces + self._cut_at([len(self._open)])
        if not self._maybe or self._open[self._maybe[-1][1] :].strip():
            return pieces
        after_marks, cut = self._maybe[-1]
        start = max(0, after_marks - CONTEXT)
        window = self._open[start:cut] + " " + PROBE
        ends = self._ends(window)
        if _ends_between(ends, after_marks - start, cut - start + 1):
            return pieces + self._cut_at([len(self._open)])
        return pieces

    def finish(self) -> list[str]:
        """All text has come: the rest, as sentences (an SSML document whole)."""
        if self._mode == "plain":
            pieces = self._scan(self._reader.finish()) if self._reader is not None else []
            return pieces + self._cut_at([len(self._open)])
        document = self._head + "".join(self._ssml)
        self._head, self._ssml, self._ssml_size = "", [], 0
        return [document] if has_speech(document) else []

    # -- plain text --------------------------------------------------------------------------------------------
    def _plain(self, text: str) -> list[str]:
        return self._scan(self._reader.feed(text) if self._reader is not None else text)

    def _scan(self, text: str) -> list[str]:
        """Take plain text as it is said; the sentences it completed."""
        if not text:
            return []
        scan_from = max(0, len(self._open) - _TAIL)
        self._open += text
        cuts: list[int] = []
        for match in _END.finditer(self._open, scan_from):
            cut = match.end()
            if cut <= self._seen:
                continue
            self._seen = cut
            marks = match.group("marks")
            if marks is None or _CERTAIN_MARKS.intersection(marks):
                cuts.append(cut)
                self._maybe.clear()  # a certain end after them: they need no judging
            else:
                self._maybe.append((match.end("marks"), cut))
        cuts.extend(self._judge())
        pieces = self._cut_at(cuts)
        while len(self._open) > self.max_open:  # no end in sight: hand on at a space
            space = max(self._open.rfind(" ", 0, self.max_open + 1), self._open.rfind("\t", 0, self.max_open + 1))
            pieces += self._cut_at([space if space > 0 else self.max_open])
        return pieces

    def _judge(self) -> list[int]:
        """The possible ends whose next word has come, judged by the segmenter on a short window around each
        (several ends in one window when they are close); the cuts of those that end a sentence."""
        ready: list[tuple[int, int, int]] = []  # (after the marks, cut, end of the next word)
        for after_marks, cut in self._maybe:
            word = _NEXT_WORD.match(self._open, cut, cut + LOOKAHEAD)
            if word is not None:
                ready.append((after_marks, cut, word.end()))
            elif len(self._open) - cut >= LOOKAHEAD:
                ready.append((after_marks, cut, cut + LOOKAHEAD))
            else:
                break  # later ends have even less text after them
        self._maybe = self._maybe[len(ready) :]
        cuts: list[int] = []
        at = 0
        while at < len(ready):
            start = max(0, ready[at][0] - CONTEXT)
            last = at
            while last + 1 < len(ready) and ready[last + 1][2] - start <= WINDOW:
                last += 1
            ends = [start + end for end in self._ends(self._open[start : ready[last][2]])]
            for after_marks, cut, _ in ready[at : last + 1]:
                if _ends_between(ends, after_marks, _skip_space(self._open, cut)):
                    cuts.append(cut)
            at = last + 1
        return cuts

    def _cut_at(self, cuts: list[int]) -> list[str]:
        """Hand on the open text up to each cut (in order); keep the rest."""
        pieces: list[str] = []
        done = 0
        for cut in cuts:
            if cut > done:
                pieces.extend(self._sentences(self._open[done:cut]))
                done = cut
        if done:
            self._open = self._open[done:]
            self._seen = max(0, self._seen - done)
            self._maybe = [(a - done, c - done) for a, c in self._maybe if c > done]
        return pieces

    def _sentences(self, text: str) -> list[str]:
        """`text` normalised, in pieces of at most `max_open` characters cut at spaces, each with something to say."""
        text = normalize(text)
        pieces = []
        while len(text) > self.max_open:
            cut = text.rfind(" ", 0, self.max_open + 1)
            cut = cut if cut > 0 else self.max_open
            pieces.append(text[:cut].strip())
            text = text[cut:].strip()
        pieces.append(text)
        if self._speakable is not None:
            pieces = [self._speakable.words(p) for p in pieces]  # whole words now: the lexicon can match
        return [p for p in pieces if has_speech(p)]

    # -- SSML --------------------------------------------------------------------------------------------------
    def _collect(self, text: str) -> None:
        if self._ssml_size + len(text) > self.limit:
            raise self._too_long()
        self._ssml.append(text)
        self._ssml_size += len(text)

    def _too_long(self) -> LimitError:
        return LimitError(
            f"streamed SSML is spoken as one request of at most {self.limit} characters; this one is longer, "
            "so send it as several documents"
        )


def _skip_space(text: str, at: int) -> int:
    space = _LEADING_SPACE.match(text, at)
    return space.end() if space is not None else at


def _ends_between(ends: list[int], low: int, high: int) -> bool:
    """Whether a sentence end (sorted offsets) lies in [low, high]."""
    at = bisect.bisect_left(ends, low)
    return at < len(ends) and ends[at] <= high
