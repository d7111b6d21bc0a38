"""Text arriving in pieces, handed on a sentence at a time as soon as each sentence is known to be complete."""

from __future__ import annotations

import re

from speakcli.text import has_speech, sentences

# Past this many characters without a sentence end, text is handed on at a space: a client that never ends a
# sentence must not make every new piece re-segment an ever longer buffer.
MAX_OPEN_SENTENCE = 1000
_PARAGRAPH_END = re.compile(r"\n[ \t\r\f\v]*\n\s*$")


class SentenceBuffer:
    """Collects streamed text; `add` returns the sentences it completed, `finish` the rest.

    A sentence is complete once the next one has begun (or a blank line follows it): a period alone may belong to
    "Dr." or "3.5", and only the following text tells. Sentences with nothing to say ("...") are dropped.
    """

    def __init__(self, language: str, max_sentence: int = MAX_OPEN_SENTENCE) -> None:
        self.language = language
        self.max_sentence = max_sentence
        self._open = ""  # text not yet handed on: at most the start of one sentence

    @property
    def pending(self) -> int:
        return len(self._open)

    def add(self, text: str) -> list[str]:
        self._open += text
        found = sentences(self._open, self.language)
        if not found:
            self._open = "" if not self._open.strip() else self._open
            return []
        if _PARAGRAPH_END.search(self._open):
            self._open = ""
            return self._speakable(found)
        done, last = found[:-1], found[-1]
        while len(last) > self.max_sentence:
            head, last = _cut(last, self.max_sentence)
            done.append(head)
        # The open sentence is kept normalised; a space it ended with separates it from the next piece.
        self._open = last + (" " if last and self._open[-1:].isspace() else "")
        return self._speakable(done)

    def finish(self) -> list[str]:
        found = sentences(self._open, self.language)
        self._open = ""
        return self._speakable(found)

    def _speakable(self, found: list[str]) -> list[str]:
        """Sentences with something to say, none longer than `max_sentence`."""
        out = []
        for sentence in found:
            while len(sentence) > self.max_sentence:
                head, sentence = _cut(sentence, self.max_sentence)
                out.append(head)
            out.append(sentence)
        return [s for s in out if has_speech(s)]


def _cut(text: str, limit: int) -> tuple[str, str]:
    """`text` split at its last space within `limit` (or at `limit` when there is none)."""
    cut = text.rfind(" ", 0, limit + 1)
    cut = cut if cut > 0 else limit
    return text[:cut].strip(), text[cut:].strip()
