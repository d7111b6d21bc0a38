"""Chat and Markdown read aloud, and the lexicon: the shapes LLM and role-play replies have, whole and streamed."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakcli.errors import UsageError
from speakcli.lexicon import Lexicon
from speakcli.readaloud import HOLD_MAX, MarkdownReader, read_aloud
from speakcli.speakable import Speakable
from speakcli.streamtext import TextStream
from speakcli.text import split_text

CHAT = Speakable()
SKIP = Speakable(actions="skip")


def said(text: str, speakable: Speakable = CHAT) -> list[str]:
    """The sentences an engine is given for `text`."""
    return split_text(speakable.text(text), "en", 250)


# -- what a reader hears ------------------------------------------------------------------------------------------


def test_sillytavern_actions_are_spoken_as_words_or_skipped() -> None:
    reply = '*smiles warmly* "Hello there, traveler!" *leans on the counter* What brings you here?'
    assert said(reply) == [
        "smiles warmly.",
        '"Hello there, traveler!" leans on the counter.',  # the segmenter's call: no capital follows the "!"
        "What brings you here?",
    ]
    assert said(reply, SKIP) == ['"Hello there, traveler!"', "What brings you here?"]
    # An action running on into the sentence keeps it one sentence; emphasis inside a sentence is no action's end.
    assert said("*nods* and smiles. I *really* mean it.") == ["nods and smiles.", "I really mean it."]
    # An unclosed asterisk was no action: skipping does not swallow what follows it.
    assert said("*sigh. I give up.", SKIP) == ["sigh.", "I give up."]


def test_an_llm_reply_in_markdown_is_read_as_sentences_without_its_symbols() -> None:
    reply = (
        "# Making pancakes\n"
        "\n"
        "Here's **what you need**:\n"
        "\n"
        "- 2 eggs\n"
        "- 1 cup of *milk*\n"
        "* flour, sifted\n"
        "\n"
        "## Steps\n"
        "1. Whisk the eggs\n"
        "2. Add the milk\n"
        "   and stir well\n"
        "3) Fry them. Enjoy!\n"
        "> Tip: see [the guide](https://example.com/pancakes?x=1) or https://www.cooking.org/a/b.\n"
    )
    assert said(reply) == [
        "Making pancakes.",
        "Here's what you need:",
        "2 eggs.",
        "1 cup of milk.",
        "flour, sifted.",
        "Steps.",
        "1: Whisk the eggs.",
        "2: Add the milk and stir well.",  # an indented line goes on with its item
        "3: Fry them.",
        "Enjoy!",
        "Tip: see the guide or cooking.org.",
    ]


def test_code_blocks_and_tables_are_skipped_and_inline_code_is_read() -> None:
    reply = (
        "Run `pip install speakcli` first.\n"
        "```python\n"
        "import speakcli\n"
        "speakcli.speak('*not* said')\n"
        "```\n"
        "It speaks.\n"
        "| Engine | Speed |\n"
        "|:------|------:|\n"
        "| Piper | fast |\n"
        "\n"
        "~~~\n"
        "still code\n"
        "~~~\n"
        "That's all."
    )
    assert said(reply) == ["Run pip install speakcli first.", "It speaks.", "That's all."]


def test_emoji_are_dropped_and_words_on_either_side_stay_apart() -> None:
    assert said("Great job!🎉🎉 See you 👨‍👩‍👧 later 👍🏽.") == ["Great job!", "See you later."]
    assert said("- Done ✅\n- Next ➡️ soon") == ["Done.", "Next soon."]
    assert said("🎉🎉🎉") == []


def test_what_only_looks_like_markup_is_text() -> None:
    for text in [
        "2*3 = 6 and 5 * 3 = 15",
        "snake_case_name",
        "C# and #hashtag",
        "I <3 you",
        "~5 minutes",
        "-5 degrees",
    ]:
        assert read_aloud(text) == text
    assert said("In the year\n1984. It was cold.") == ["In the year 1984.", "It was cold."]  # no list: 1984 is text
    assert read_aloud(r"\*not emphasis\*") == "*not emphasis*"
    # A "link" whose address never closes on its line has none: the words after it are read, not dropped.
    assert read_aloud("See [this](and the rest of my message\nNext.") == "See this(and the rest of my message\nNext."
    assert read_aloud("I mean [sic] (really, truly") == "I mean sic (really, truly"


def test_headings_rules_and_quotes_drop_their_markers() -> None:
    assert said("## Title ##\nText\n\n---\n\n> quoted\n> > nested") == ["Title.", "Text", "quoted nested"]
    assert said("Setext title\n===\nBody") == ["Setext title.", "Body"]
    assert said("![a red door](door.png) and <https://example.org/x>") == ["a red door and example.org"]


def test_verbatim_keeps_the_text_and_ssml_is_never_cleaned() -> None:
    assert said("*waves* **hi** `x`", Speakable(verbatim=True)) == ["*waves* **hi** `x`"]


# -- no word lost or repeated ---------------------------------------------------------------------------------------

WORD = st.text(alphabet=st.characters(categories=("Ll", "Lu", "Nd", "Lo")), min_size=1, max_size=8)
GLUE = st.sampled_from([" ", " ", " ", ", ", ". ", "! ", "? ", "; ", ": ", "\n", "\n\n", "'", "-", " (", ") ", '"'])


@st.composite
def prose(draw: st.DrawFn) -> str:
    words = draw(st.lists(WORD, min_size=1, max_size=40))
    return "".join(w + draw(GLUE) for w in words)


@settings(max_examples=300, deadline=None)
@given(prose(), st.booleans())
def test_plain_prose_keeps_every_word_once_in_order(text: str, skip: bool) -> None:
    speakable = SKIP if skip else CHAT
    words = re.findall(r"\w+", text)
    assert re.findall(r"\w+", speakable.text(text)) == words
    assert re.findall(r"\w+", " ".join(said(text, speakable))) == words


MARKDOWN = st.text(alphabet="ab1. *_`#>-|[]()~!\n😀h:/", max_size=80)


@settings(max_examples=300, deadline=None)
@given(MARKDOWN, st.lists(st.integers(1, 6), min_size=1, max_size=30), st.booleans())
def test_text_in_pieces_is_read_as_the_whole_text_is(text: str, cuts: list[int], skip: bool) -> None:
    reader = MarkdownReader(skip_actions=skip)
    out, at = [], 0
    for size in cuts * (len(text) // max(1, sum(cuts)) + 1):
        if at >= len(text):
            break
        out.append(reader.feed(text[at : at + size]))
        at += size
    out.append(reader.finish())
    assert "".join("".join(out).split()) == "".join(read_aloud(text, skip).split())


def test_work_is_linear_and_what_waits_is_bounded() -> None:
    reader = MarkdownReader()
    kept = 0
    for _ in range(20_000):  # a "URL" or a "[link" that never ends: decided once it passes the bound
        reader.feed("[https://x.y/" + "a" * 50)
        kept = max(kept, reader.pending)
    assert kept <= HOLD_MAX + 100
    sizes = [2_000, 64_000]
    spent = []
    for size in sizes:  # the same shapes, 32 times as many: not much more than 32 times the work
        text = ("*waves* **Hi** [a](b) `c` 😀 " * size)[:size] + "\n- item\n"
        started = time.process_time()
        for _ in range(3):
            read_aloud(text)
        spent.append(time.process_time() - started)
    assert spent[1] < spent[0] * 32 * 4


# -- streamed ---------------------------------------------------------------------------------------------------


def stream_sentences(pieces: list[str], speakable: Speakable = CHAT, pause_after: int | None = None) -> list[str]:
    stream = TextStream("en", speakable=speakable)
    out: list[str] = []
    for n, piece in enumerate(pieces):
        out += stream.feed(piece)
        if n == pause_after:
            out += stream.quiet()
    return out + stream.finish()


def test_a_streamed_reply_skips_a_code_block_that_spans_pieces_and_ends_each_item() -> None:
    reply = "Try this:\n```sh\necho '*hi*'\n```\n- **Fast**: yes\n- Loud: no 🔊\nDone."
    pieces = [reply[i : i + 3] for i in range(0, len(reply), 3)]
    assert stream_sentences(pieces) == ["Try this:", "Fast: yes.", "Loud: no.", "Done."]


def test_a_list_item_is_spoken_when_the_text_pauses_after_its_line() -> None:
    stream = TextStream("en", speakable=CHAT)
    assert stream.feed("- The first item\n") == []  # the next line may go on with it
    assert stream.waits_for_quiet
    assert stream.quiet() == ["The first item."]
    assert stream.feed("- The second\n") + stream.finish() == ["The second."]


def test_a_stream_applies_the_lexicon_once_to_whole_words() -> None:
    speakable = Speakable(lexicon=Lexicon({"gg": "good game", "good": "fine"}))
    assert stream_sentences(["g", "g wp, g", "g!"], speakable) == ["good game wp, good game!"]
    verbatim = Speakable(verbatim=True, lexicon=speakable.lexicon)
    assert stream_sentences(["*g", "g*"], verbatim) == ["*good game*"]  # verbatim: the markup stays, words change


# -- the lexicon ------------------------------------------------------------------------------------------------


def test_lexicon_whole_words_case_rules_and_phrases() -> None:
    lexicon = Lexicon({"lol": "laughing out loud", "US": "United States", "gg": "good game", "new york": "N Y C"})
    assert lexicon.apply("LOL, lol and Lol! lolz egg gg.") == (
        "laughing out loud, laughing out loud and laughing out loud! lolz egg good game."
    )
    assert lexicon.apply("us and the US") == "us and the United States"  # a capital: only as written
    assert lexicon.apply("New  York, new yorkers") == "N Y C, new yorkers"
    longer = Lexicon({"new": "NEW", "new york": "big apple", "C++": "C plus plus", "Dr.": "Doctor"})
    assert longer.apply("new york is new; C++ and Dr. Who") == "big apple is NEW; C plus plus and Doctor Who"


def test_lexicon_files_toml_and_tsv(tmp_path: Path) -> None:
    toml = tmp_path / "words.toml"
    toml.write_text('lol = "laughing out loud"\n"new york" = "the big apple"\nGG = "good game"\n', encoding="utf-8")
    tsv = tmp_path / "words.tsv"
    tsv.write_text("# slang\nlol\tlaughing out loud\n\nnew york\tthe big apple\nGG\tgood game\n", encoding="utf-8")
    assert Lexicon.load(toml).entries == Lexicon.load(tsv).entries
    assert Lexicon.load(toml).digest == Lexicon.load(tsv).digest


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("bad.toml", 'lol = "a"\nlol = "b"\n', "not valid TOML"),
        ("bad.toml", "lol = " + "[" * 5000, "not valid TOML (nested too deeply)"),  # past the recursion limit
        ("bad.toml", "lol = 3\n", 'write it as word = "how to say it"'),
        ("bad.toml", '"" = "nothing"\n', "the word is empty"),
        ("bad.tsv", "lol laughing\n", "line 1: no tab"),
        ("bad.tsv", "lol\ta\nLOL\tb\nlol\tc\n", "line 3: 'lol' is already given (line 1)"),
        ("bad.tsv", b"\xff\xfe", "not UTF-8"),
        ("missing.tsv", None, "cannot be read"),
    ],
)
def test_a_bad_lexicon_file_is_one_usage_error_naming_it(tmp_path: Path, name: str, content: object, says: str) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(UsageError, match=re.escape(says)) as caught:
        Lexicon.load(path)
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)
