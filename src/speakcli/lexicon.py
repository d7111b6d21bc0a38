"""A pronunciation lexicon: whole words (or phrases) replaced by how to say them, read from a TOML or TSV file."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import tomllib

from speakcli import tomltext
from speakcli.errors import UsageError

MAX_ENTRIES = 20_000  # compiling takes about a second per 15,000 here
MAX_WORD = 100  # characters in a word or phrase
MAX_SAID = 1000  # characters in what it is said as
MAX_FILE = 16 * 1024 * 1024
_WORD = re.compile(r"\w")


@dataclass(frozen=True)
class Lexicon:
    """Words and how to say them. A word written in lower case matches it in any case (`lol` matches `LOL` and
    `Lol`); one with a capital matches only as written (`US` leaves `us` alone). A match is a whole word: not
    part of a longer one (`gg` is not replaced in `egg`). A word may be a phrase (`new york`), matching across
    any spaces. Where two could match at one place, one written with a capital wins, then the longer. What it is
    said as is put in as written.

    Immutable and cheap to share: a daemon that reloads its file swaps the whole object.
    """

    entries: Mapping[str, str]
    source: str = ""  # the file it came from, for messages
    _exact: dict[str, str] = field(init=False, repr=False, compare=False)
    _folded: dict[str, str] = field(init=False, repr=False, compare=False)
    _pattern: re.Pattern[str] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        exact = {w: said for w, said in self.entries.items() if w != w.lower()}
        folded = {w: said for w, said in self.entries.items() if w == w.lower()}
        # Two tries as regexes: at each place the text's characters are matched once, whatever the number of
        # words (an alternation of every word would try each word there). Written-as-is words are tried first.
        parts = [_trie_regex(exact)] if exact else []
        if folded:
            parts.append(f"(?i:{_trie_regex(folded)})")
        object.__setattr__(self, "_exact", exact)
        object.__setattr__(self, "_folded", folded)
        object.__setattr__(self, "_pattern", re.compile("|".join(parts)) if parts else None)

    @classmethod
    def load(cls, path: Path) -> Lexicon:
        """Read a lexicon: TOML (`.toml`: `word = "said as"`) or TSV (anything else: `word<TAB>said as` a line,
        `#` comments and blank lines skipped). A bad file is a `UsageError` naming it and the line or key."""
        path = Path(path).expanduser()
        try:
            with path.open("rb") as fh:
                data = fh.read(MAX_FILE + 1)
        except OSError as exc:
            raise UsageError(f"lexicon {path} cannot be read ({exc.strerror or exc}); check the path") from None
        if len(data) > MAX_FILE:
            raise UsageError(f"lexicon {path} is larger than {MAX_FILE // 2**20} MB; split it or trim it")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"lexicon {path} is not UTF-8 text; save it as UTF-8") from None
        entries = _toml(path, text) if path.suffix.lower() == ".toml" else _tsv(path, text)
        return cls(entries, str(path))

    @property
    def digest(self) -> str:
        """A hash of the entries: two lexicons with the same digest say the same."""
        blob = json.dumps(sorted(self.entries.items()), ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def apply(self, text: str) -> str:
        """`text` with every whole-word match replaced by how it is said; linear in the text."""
        if self._pattern is None:
            return text
        return self._pattern.sub(self._said, text)

    def _said(self, match: re.Match[str]) -> str:
        word = " ".join(match.group().split())
        found = self._exact.get(word)
        if found is None:
            found = self._folded.get(word.lower())
        return match.group() if found is None else found


_Trie = dict[str, "_Trie"]
_END = ""  # a trie node's key for "a word ends here"


def _trie_regex(words: Iterable[str]) -> str:
    """One regex matching any of `words` as a whole word, longest first (a space in a word matches any spaces)."""
    root: _Trie = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[_END] = {}
    return _node_regex(root, "")


def _node_regex(node: _Trie, last: str) -> str:
    """The regex of what may follow `last` (the character that led to `node`): the longer words first, then the
    end of a word here, where a word character must not touch another."""
    branches = []
    for ch, child in sorted(node.items()):
        if ch == _END:
            continue
        piece = r"\s+" if ch == " " else re.escape(ch)
        if not last and _WORD.match(ch):
            piece = r"(?<!\w)" + piece
        branches.append(piece + _node_regex(child, ch))
    if _END in node:
        branches.append(r"(?!\w)" if _WORD.match(last) else "")
    if len(branches) == 1:
        return branches[0]
    return "(?:" + "|".join(branches) + ")"


def _check(path: Path, where: str, word: object, said: object, seen: dict[str, str]) -> tuple[str, str]:
    if not isinstance(word, str) or not isinstance(said, str):
        raise UsageError(f'lexicon {path}, {where}: write it as word = "how to say it"')
    word = " ".join(word.split())
    if not word:
        raise UsageError(f"lexicon {path}, {where}: the word is empty; give a word before the spoken form")
    if len(word) > MAX_WORD or len(said) > MAX_SAID:
        raise UsageError(
            f"lexicon {path}, {where}: too long; a word may have {MAX_WORD} characters, its spoken form {MAX_SAID}"
        )
    if word in seen:
        raise UsageError(f"lexicon {path}, {where}: {word!r} is already given ({seen[word]}); keep one")
    if len(seen) >= MAX_ENTRIES:
        raise UsageError(f"lexicon {path} has more than {MAX_ENTRIES} words; split it or trim it")
    seen[word] = where
    return word, " ".join(said.split())


def _toml(path: Path, text: str) -> dict[str, str]:
    try:
        data = tomltext.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"lexicon {path} is not valid TOML ({exc}); fix it, or use word<TAB>spoken form lines"
        ) from None
    seen: dict[str, str] = {}
    entries: dict[str, str] = {}
    for word, said in data.items():
        word, said = _check(path, f"key {word!r}", word, said, seen)
        entries[word] = said
    return entries


def _tsv(path: Path, text: str) -> dict[str, str]:
    seen: dict[str, str] = {}
    entries: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise UsageError(
                f"lexicon {path}, line {number}: no tab; write the word, a tab, then how to say it "
                "(or use a .toml file)"
            )
        word, said = line.split("\t", 1)
        word, said = _check(path, f"line {number}", word, said, seen)
        entries[word] = said
    return entries
