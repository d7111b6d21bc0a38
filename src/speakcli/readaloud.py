"""Markdown and chat text as a person reads it aloud, fed whole or in pieces: markers dropped, code and tables skipped."""

from __future__ import annotations

import re

# What may begin a line's Markdown block marker; a line starting with anything else is plain text at once.
_MARKER_START = frozenset("#>-*+_=~`|0123456789")
_INDENT = re.compile(r"[ \t\r\f\v]*")
_SPACE = frozenset(" \t\r\f\v\n")
# A sentence or clause already ends here: no full stop is added after it.
_ENDED = frozenset(".!?…:;,。！？‼⁇⁈⁉\"'”’»)]」』）")
_SENTENCE_END = frozenset(".!?…。！？‼⁇⁈⁉")
_CLOSERS = "\"'”’»)]」』）"
_CLOSING = frozenset(".,!?;:…)]}\"'”’»")  # what follows a word without a space
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")

# Emoji: pictographs, dingbats and the symbols with an emoji form, then what joins and modifies them (skin tones
# are in the first range; ZWJ sequences, variation selectors, keycaps, flag tags). Dingbat brackets and circled
# digits (U+2768-2793) are text, so they stay.
_EMOJI_CHARS = (
    "\U0001f000-\U0001faff\u2600-\u2767\u2794-\u27bf\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa"
    "\u24c2\u25aa\u25ab\u25b6\u25c0\u25fb-\u25fe\u2934\u2935\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\ufe0f\u20e3"
)
_EMOJI = f"[{_EMOJI_CHARS}](?:[{_EMOJI_CHARS}\ufe0e\u200d\U000e0020-\U000e007f])*"
# Where inline markup may start: the reader copies everything up to one of these at once.
_SPECIAL = re.compile(rf"[\n\\`*_~\[\]!<]|https?://|{_EMOJI}")
_CODE_SPECIAL = re.compile(r"[\n`]")  # inside `code`: only its end (or the line's) means anything
_HEADING_SPECIAL = re.compile(rf"[\n\\`*_~\[\]!<#]|https?://|{_EMOJI}")
_URL = re.compile(r"https?://(?:[^\s<>()\[\]]|\([^\s()<>]*\))*")
_URL_HOST = re.compile(r"https?://(?:www\.)?([^/?#:\s]*)")
_URL_START = re.compile(r"(?<!\w)h(?:t(?:t(?:p(?:s?(?::/?)?)?)?)?)?$")  # what may be "https://" cut short
_AUTOLINK = re.compile(r"<(https?://[^\s<>]*)>")
_FENCE = re.compile(r"`{3,}|~{3,}")
_RULE = re.compile(r"([-*_=])(?:[ \t]*\1){2,}[ \t]*")
_RULE_SO_FAR = re.compile(r"([-*_=])[-*_= \t]*")
_TASK = re.compile(r"\[[ xX]\](?:[ \t]+|$)")
_CLOSING_HASHES = re.compile(r"#+[ \t]*(?=\n|$)")

HOLD_MAX = 1024  # most characters kept undecided (a URL, a link's address, a line's marker); past that, decided
ACTION_MAX = 1000  # most characters an *action* may hold while skipping it; a longer one is spoken


class MarkdownReader:
    """Markdown and role-play text in, the words a person would read aloud out, as soon as they are certain.

    - Emphasis markers (`*`, `**`, `_`, `__`, `~~`), heading `#`s, quote `>`s and bullets are dropped; a heading
      and each list item become a sentence of their own (a full stop is added where none ends it); a numbered item
      keeps its number ("1: ..."). A `*` or `_` with spaces on both sides, or inside a word (`2*3`, `snake_case`),
      is text.
    - `*actions*` (single asterisks, as role-play front ends write them) are spoken as their words, followed by a
      stop when one opens a sentence ("*waves* Hi"), or skipped with `skip_actions`.
    - Links are their text, images their alt text; a bare URL is its host name ("example.com").
    - Fenced code blocks, tables (rows that start with `|`), rules and setext underlines are skipped; inline
      `code` is read as its text. Emoji are dropped.

    `feed` returns what a piece made certain and keeps a short undecided tail (at most about `HOLD_MAX`
    characters; an action being skipped, up to `ACTION_MAX`); `pause` settles what waits only on the next line;
    `finish` returns the rest. Work is linear in the text. Not thread-safe: one caller at a time.
    """

    def __init__(self, skip_actions: bool = False) -> None:
        self.skip_actions = skip_actions
        self._buf = ""  # input not yet read: a tail whose meaning the next characters decide
        self._out: list[str] = []
        self._line_start = True
        self._kind = "blank"  # the current line: para, item, heading or skip (a table row, a rule, code)
        self._prev_kind = "blank"  # the line before it
        self._fence: str | None = None  # the open code fence's marker
        self._item_end_due = False  # a list item's line ended: is the next line its continuation?
        self._prev = "\n"  # the last input character read, for telling markup from text
        self._last = ""  # the last non-space character written
        self._ended = False  # what was written ends a sentence ("Hi!", '"Hi!"')
        self._spoken = False  # something was written since the last sentence break
        self._line_text = False  # something was written on this line
        self._code = 0  # backticks of the open code span
        self._in_action = False
        self._action: list[str] | None = None  # skipping: what the open action said, dropped at its close
        self._action_size = 0
        self._action_opens_sentence = False
        self._stop_due = False  # an action that opened a sentence closed: a stop unless lower case follows
        self._spaces = ""  # spaces after the last word: a stop added later goes before them

    @property
    def pending(self) -> int:
        """Characters kept: input not yet decided, and an action's words while it may still be skipped."""
        return len(self._buf) + self._action_size + len(self._spaces)

    @property
    def holding(self) -> bool:
        """Whether a pause in the text would end the sentence in hand (see `pause`)."""
        return self._item_end_due or self._stop_due or bool(self._spaces)

    def feed(self, text: str) -> str:
        """Take a piece of text; what it made certain."""
        self._buf += text
        self._read(final=False)
        return self._take()

    def pause(self) -> str:
        """The text paused: a list item whose line ended ends here, a stop due after an action is made, and the
        spaces after the last word are handed on (they tell "He left. " from "He left.")."""
        if self._item_end_due:
            self._item_end_due = False
            self._prev_kind = "blank"  # a line that comes later starts afresh
            self._break(stop=True)
        self._settle_stop()
        self._out.append(self._spaces)
        self._spaces = ""
        return self._take()

    def finish(self) -> str:
        """All text has come: the rest."""
        self._read(final=True)
        if self._item_end_due or (not self._line_start and self._kind in ("item", "heading")):
            self._item_end_due = False
            self._break(stop=True)
        self._end_inline()
        self._settle_stop()
        return self._take()

    # -- the loop ----------------------------------------------------------------------------------------------
    def _take(self) -> str:
        out = "".join(self._out)
        self._out = []
        return out

    def _read(self, final: bool) -> None:
        buf, i = self._buf, 0
        while i < len(buf):
            force = final or len(buf) - i > HOLD_MAX
            if self._line_start:
                j = self._line(buf, i, force)
            elif self._fence is not None or self._kind == "skip":
                j = self._skip_line(buf, i)
            else:
                j = self._inline(buf, i, force)
            if j is None:
                break
            i = j
        self._buf = buf[i:]

    # -- lines -------------------------------------------------------------------------------------------------
    def _line(self, buf: str, i: int, force: bool) -> int | None:
        """Read a line's start: its block marker decides what the line is."""
        if self._fence is not None:
            return self._fenced_line(buf, i, force)
        j = _INDENT.match(buf, i).end()  # type: ignore[union-attr]  # matches the empty string
        if j == len(buf):
            return j if force else None  # spaces so far: the next character decides
        if buf[j] == "\n":
            self._blank()
            return j + 1
        indented = j > i
        if buf[j] not in _MARKER_START:
            self._begin("para", indented)
            return j
        nl = buf.find("\n", j)
        line = buf[j : nl if nl >= 0 else len(buf)]
        complete = nl >= 0 or force
        decided = self._block(line, complete, indented)
        if decided is None:
            return None
        return j + decided

    def _block(self, line: str, complete: bool, indented: bool) -> int | None:
        """What a line starting with a marker character is; the characters of its marker, or None: undecided."""
        c = line[0]
        if c == ">":
            if len(line) == 1 and not complete:
                return None
            return 2 if line[1:2] in (" ", "\t") else 1  # a quote's marker: what follows starts the line again
        if c in "`~":
            fence = _FENCE.match(line)
            if fence is None:
                if not complete and len(line) < 3 and line == c * len(line):
                    return None
            elif c == "~" or "`" not in line[fence.end() :]:
                if not complete and c == "`":
                    return None  # a backtick fence's line may not hold a backtick: see all of it
                self._begin("skip", indented)
                self._fence = fence.group()
                return 0  # the rest of the line (its info string) is skipped
        if c in "-*_=":
            if _RULE.fullmatch(line) and complete:
                self._begin("skip", indented)
                return 0
            if not complete and _RULE_SO_FAR.fullmatch(line) and len(set(line) - set(" \t")) == 1:
                return None  # "- -" may yet be a rule
        if c == "#":
            hashes = _run(line, 0, "#")
            if hashes == len(line) and not complete and hashes <= 6:
                return None
            if hashes <= 6 and (hashes == len(line) or line[hashes] in " \t"):
                self._begin("heading", indented)
                return _INDENT.match(line, hashes).end()  # type: ignore[union-attr]
        if c in "-*+":
            if len(line) == 1 and not complete:
                return None
            if len(line) == 1 or line[1] in " \t":
                start = _INDENT.match(line, 1).end()  # type: ignore[union-attr]
                rest = line[start:]
                if not complete and (not rest or (rest.startswith("[") and len(rest) < 4)):
                    return None  # its words, or whether it is a task ("[x] "), come next
                task = _TASK.match(rest)
                self._begin("item", indented)
                return start + (task.end() if task else 0)
        if c.isdigit():
            digits = len(line) - len(line.lstrip("0123456789"))
            if not complete and digits <= 9 and len(line) <= digits + 1:
                return None  # "1" may be "1. " or "1.5"
            marked = digits <= 9 and line[digits : digits + 1] in (".", ")")
            spaced = marked and (len(line) == digits + 1 or line[digits + 1] in " \t")
            # Only "1." interrupts a paragraph: "In the year\n1984. It was" is one.
            if spaced and (self._prev_kind != "para" or int(line[:digits]) == 1):
                self._begin("item", indented)
                self._write(f"{line[:digits]}: ")
                return _INDENT.match(line, digits + 1).end()  # type: ignore[union-attr]
        if c == "|":
            self._begin("skip", indented)
            return 0
        self._begin("para", indented)
        return 0

    def _fenced_line(self, buf: str, i: int, force: bool) -> int | None:
        """A line inside a code fence: skipped, the fence closed by a line of its marker."""
        nl = buf.find("\n", i)
        if nl < 0 and not force:
            return None
        end = nl if nl >= 0 else len(buf)
        line = buf[i:end].strip(" \t\r")
        assert self._fence is not None
        if line and set(line) == {self._fence[0]} and len(line) >= len(self._fence):
            self._fence = None
        self._kind = "skip"
        self._line_start = False
        return end

    def _skip_line(self, buf: str, i: int) -> int:
        nl = buf.find("\n", i)
        if nl < 0:
            return len(buf)
        self._newline()
        return nl + 1

    def _begin(self, kind: str, indented: bool) -> None:
        """A line of `kind` begins: end what the lines before it leave open."""
        if self._item_end_due:
            self._item_end_due = False
            if kind == "para" and indented:
                kind = "item"  # an indented line goes on with the item
                self._write(" ")
            else:
                self._break(stop=True)
        elif kind != "para" and self._prev_kind == "para":
            self._break(stop=True)  # a block that interrupts a paragraph ends its sentence
        if kind != "para":
            self._end_inline()
        self._kind = kind
        self._line_start = False
        self._line_text = False

    def _blank(self) -> None:
        if self._item_end_due:
            self._item_end_due = False
            self._break(stop=True)
        self._end_inline()
        self._settle_stop()
        if self._spoken:
            self._write("\n\n")
            self._spoken = False
        self._prev_kind = self._kind = "blank"

    def _newline(self) -> None:
        """The end of a line that is not blank."""
        self._settle_stop()
        if self._kind == "heading":
            self._break(stop=True)
        elif self._kind == "item":
            self._item_end_due = True  # its stop waits for the next line: it may go on with the item
        elif self._kind == "para":
            self._write("\n")
        self._prev_kind = self._kind
        self._line_start = True
        self._prev = "\n"

    def _break(self, stop: bool) -> None:
        """End the sentence in hand, with a full stop when `stop` and none ends it, and start a paragraph."""
        self._end_inline()
        self._settle_stop()
        if not self._spoken:
            return
        if stop and self._last not in _ENDED:
            self._stop()
        self._write("\n\n")
        self._spoken = False

    # -- inline markup ----------------------------------------------------------------------------------------
    def _inline(self, buf: str, i: int, force: bool) -> int | None:
        special = _CODE_SPECIAL if self._code else _HEADING_SPECIAL if self._kind == "heading" else _SPECIAL
        m = special.search(buf, i)
        end = m.start() if m else len(buf)
        if m is None and not force:
            held = _URL_START.search(buf, max(i, end - 8), end)  # "see htt": perhaps a URL
            if held is not None:
                end = held.start()
        if end > i:
            self._text(buf[i:end])
            return end
        if m is None:
            return None
        return self._markup(buf, i, m.group(), force)

    def _text(self, text: str) -> None:
        self._write(text)
        self._prev = text[-1]

    def _markup(self, buf: str, i: int, found: str, force: bool) -> int | None:
        c = found[0]
        if c == "\n":
            self._newline()
            return i + 1
        if self._code:
            run = _run(buf, i, "`")
            if run == len(buf) and not force:
                return None
            if run - i == self._code:
                self._code = 0
            self._prev = "`"
            return run
        if found.startswith("http"):
            return self._url(buf, i, force)
        if c not in "\\`*_~[]!<#":  # emoji: words on either side stay apart
            end = i + len(found)
            if end == len(buf) and not force:
                return None  # the next piece may go on with it (a skin tone, a joiner)
            after = buf[end : end + 1]
            if after in _CLOSING:
                self._spaces = ""  # "later 👍." is "later."
            elif after not in _SPACE:
                self._write(" ")
            self._prev = " "
            return end
        if c == "#":
            if not force and "\n" not in buf[i:]:
                return None  # closing hashes end the line: see it all (a heading is short)
            hashes = _CLOSING_HASHES.match(buf, i)
            if hashes is not None and self._prev in _SPACE:
                return hashes.end()  # a heading's closing hashes
            self._text(c)
            return i + 1
        if c == "\\":
            if i + 1 == len(buf) and not force:
                return None
            escaped = buf[i + 1 : i + 2]
            if escaped and escaped in _PUNCT:
                self._text(escaped)
                return i + 2
            self._text(c)
            return i + 1
        if c == "`":
            run = _run(buf, i, "`")
            if run == len(buf) and not force:
                return None
            self._code = run - i
            self._prev = "`"
            return run
        if c in "*_~":
            return self._emphasis(buf, i, c, force)
        if c == "[":
            self._prev = c
            return i + 1
        if c == "]":
            return self._link_end(buf, i, force)
        if c == "!":
            if i + 1 == len(buf) and not force and self._prev in _SPACE:
                return None
            if buf[i + 1 : i + 2] == "[" and self._prev in _SPACE:
                return i + 1  # an image: its alt text is read
            self._text(c)
            return i + 1
        return self._angle(buf, i, force)

    def _emphasis(self, buf: str, i: int, c: str, force: bool) -> int | None:
        run = _run(buf, i, c)
        if run == len(buf) and not force:
            return None
        before, after = self._prev, buf[run] if run < len(buf) else "\n"
        size = run - i
        space_before, space_after = before in _SPACE, after in _SPACE
        text = (space_before and space_after) or (before.isalnum() and after.isalnum()) or (c == "~" and size != 2)
        if text:
            self._text(buf[i:run])
            return run
        if c == "*" and size == 1:
            if self._in_action and not space_before:
                self._close_action()
            elif not self._in_action and not space_after:
                self._open_action()
        self._prev = c
        return run

    def _open_action(self) -> None:
        self._in_action = True
        self._action_opens_sentence = not self._line_text or self._ended
        if self.skip_actions:
            self._action, self._action_size = [], 0

    def _close_action(self) -> None:
        self._in_action = False
        if self._action is not None:
            self._action, self._action_size = None, 0  # skipped: its words are dropped
        elif self._action_opens_sentence and self._last not in _ENDED:
            self._stop_due = True

    def _release_action(self) -> None:
        """An action that never closed (or grew too long) was no action: its words are spoken."""
        held, self._action, self._action_size = self._action, None, 0
        self._in_action = False
        for text in held or ():
            self._write(text)

    def _link_end(self, buf: str, i: int, force: bool) -> int | None:
        """`]`: a link's text ends; its address `(...)` or reference `[...]` after it is not read."""
        if i + 1 == len(buf) and not force:
            return None
        self._prev = "]"
        after = buf[i + 1 : i + 2]
        if after not in ("(", "["):
            return i + 1
        close = ")" if after == "(" else "]"
        depth, j = 0, i + 1
        while j < len(buf):
            ch = buf[j]
            if ch == "\n":
                return i + 1  # never closed on its line: no address, but words ("[sic] (and more"): read them
            if ch == after:
                depth += 1
            elif ch == close:
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return i + 1 if force else None

    def _url(self, buf: str, i: int, force: bool) -> int | None:
        """A bare URL is read as its host ("example.com"); the punctuation after it is the sentence's."""
        url = _URL.match(buf, i)
        assert url is not None
        if url.end() == len(buf) and not force:
            return None
        text = url.group().rstrip(".,;:!?'\"")
        self._say_url(text)
        return i + len(text)

    def _say_url(self, url: str) -> None:
        host = _URL_HOST.match(url)
        self._text(host.group(1) if host is not None and host.group(1) else " ")

    def _angle(self, buf: str, i: int, force: bool) -> int | None:
        """`<https://...>` is a link, read as its host; any other `<` is text."""
        link = _AUTOLINK.match(buf, i)
        if link is not None:
            self._say_url(link.group(1))
            return link.end()
        if not force and re.fullmatch(r"<https?://[^\s<>]*|<(?:h(?:t(?:t(?:p(?:s?(?::/?)?)?)?)?)?)?", buf[i:]):
            return None
        self._text("<")
        return i + 1

    def _end_inline(self) -> None:
        """A block ends: an open code span or action ends with it."""
        self._code = 0
        if self._action is not None:
            self._release_action()
        self._in_action = False

    # -- writing -----------------------------------------------------------------------------------------------
    def _write(self, text: str) -> None:
        """Write text; spaces at its end wait for what follows, so a stop added later goes right after a word."""
        if self._action is not None:  # skipping an action: held until it closes, dropped then
            self._action.append(text)
            self._action_size += len(text)
            if self._action_size > ACTION_MAX:
                self._release_action()
            return
        body = text.rstrip(" \t")
        if not body:
            self._spaces += text
            return
        words = body.strip()
        if self._stop_due and words:
            self._stop_due = False
            if not words[0].islower():  # "*waves* and smiles" goes on; "*waves* Hi" is two sentences
                self._stop()
        self._out += [self._spaces, body]
        self._spaces = text[len(body) :]
        if words:
            self._last = words[-1]
            self._spoken = self._line_text = True
            unquoted = words.rstrip(_CLOSERS)
            if unquoted:  # a closing quote alone ("!" then '"') leaves the sentence ended or not
                self._ended = unquoted[-1] in _SENTENCE_END

    def _stop(self) -> None:
        """A full stop right after the last word: before the spaces and line ends after it not yet handed on."""
        at = len(self._out)
        while at > 0 and not self._out[at - 1].strip():
            at -= 1
        self._out.insert(at, ".")
        self._last, self._ended = ".", True

    def _settle_stop(self) -> None:
        if self._stop_due:
            self._stop_due = False
            self._stop()


def _run(text: str, i: int, char: str) -> int:
    """Where the run of `char` starting at `i` ends."""
    j = i
    while j < len(text) and text[j] == char:
        j += 1
    return j


def read_aloud(text: str, skip_actions: bool = False) -> str:
    """Whole Markdown or chat text as it is read aloud (see `MarkdownReader`)."""
    reader = MarkdownReader(skip_actions)
    return reader.feed(text) + reader.finish()
