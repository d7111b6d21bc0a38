"""The text step every front end shares: Markdown and chat read aloud (unless verbatim), then the lexicon."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from speakcli.lexicon import Lexicon
from speakcli.readaloud import MarkdownReader, read_aloud

Actions = Literal["speak", "skip"]


@dataclass(frozen=True)
class Speakable:
    """How plain text becomes what is said, before it is split into sentences; never applied to SSML.

    Unless `verbatim`, Markdown and role-play markup is read as a person reads it aloud (`speakcli.readaloud`),
    `*actions*` spoken or skipped as `actions` says; then the `lexicon`'s words are replaced, verbatim or not.
    """

    verbatim: bool = False
    actions: Actions = "speak"
    lexicon: Lexicon | None = None

    @classmethod
    def of(cls, verbatim: bool, actions: str, lexicon: Path | None) -> Speakable:
        """The step for these settings, the lexicon read from its file (a bad file: `UsageError`)."""
        return cls(verbatim, "skip" if actions == "skip" else "speak", Lexicon.load(lexicon) if lexicon else None)

    def with_lexicon(self, lexicon: Lexicon | None) -> Speakable:
        return replace(self, lexicon=lexicon)

    @property
    def identity(self) -> list[object]:
        """What decides the words said, as plain data (a warm server must have the same; a batch item's key)."""
        return [self.verbatim, self.actions, self.lexicon.digest if self.lexicon else None]

    def text(self, text: str) -> str:
        """Whole text as it is said (linear in its length)."""
        if not self.verbatim:
            text = read_aloud(text, skip_actions=self.actions == "skip")
        return self.words(text)

    def words(self, text: str) -> str:
        """The lexicon's words replaced: for text already read aloud, in whole sentences (a stream's)."""
        return self.lexicon.apply(text) if self.lexicon is not None else text

    def reader(self) -> MarkdownReader | None:
        """A reader for text that comes in pieces; None when verbatim (the pieces are spoken as they are)."""
        return None if self.verbatim else MarkdownReader(skip_actions=self.actions == "skip")


VERBATIM = Speakable(verbatim=True)  # text spoken exactly as given
