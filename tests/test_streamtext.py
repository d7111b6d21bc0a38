"""Streamed text assembled into sentences: where it is cut, what a pause does, SSML kept whole, bounded work."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakcli.errors import LimitError
from speakcli.serving.streamed import StreamedText
from speakcli.streamtext import CONTEXT, LOOKAHEAD, PROBE, TextStream, ssml_start
from speakcli.text import sentence_ends


def fed(stream: TextStream, pieces: list[str]) -> list[list[str]]:
    return [stream.feed(piece) for piece in pieces]


def test_a_sentence_is_complete_once_the_next_word_shows_it_was_no_abbreviation() -> None:
    stream = TextStream("en")
    assert fed(stream, ["Dr. Smith said hello", ". Then ", "he left"]) == [[], ["Dr. Smith said hello."], []]
    assert stream.finish() == ["Then he left"]
    stream = TextStream("en")
    assert fed(stream, ["The first sentence ", "arrives in pieces. ", "The sec"]) == [
        [],
        [],
        ["The first sentence arrives in pieces."],
    ]
    assert fed(TextStream("en"), ["It costs 3", ".", "5 dollars today. Then "]) == [
        [],
        [],
        ["It costs 3.5 dollars today."],
    ]
    assert fed(TextStream("en"), ['He said "stop." And ']) == [['He said "stop."']]


def test_question_and_exclamation_marks_and_newlines_end_a_sentence_at_once() -> None:
    assert TextStream("en").feed("Is it here? ") == ["Is it here?"]
    assert TextStream("en").feed("Wow! ") == ["Wow!"]
    assert TextStream("en").feed("a list:\n") == ["a list:"]
    assert TextStream("zh").feed("你好。我是") == ["你好。"]  # no space follows a full-width stop


def test_a_pause_ends_a_sentence_unless_it_ends_in_an_abbreviation() -> None:
    stream = TextStream("en")
    assert stream.feed("He left. ") == []
    assert stream.waits_for_quiet
    assert stream.quiet() == ["He left."]
    doctor = TextStream("en")
    assert doctor.feed("I met Dr. ") == [] and doctor.waits_for_quiet
    assert doctor.quiet() == []  # "Dr." is never an end
    assert not doctor.waits_for_quiet  # judged once per pause
    assert doctor.feed("Smith today. Then ") == ["I met Dr. Smith today."]
    number = TextStream("en")
    assert number.feed("It costs 3.") == [] and not number.waits_for_quiet  # "3." may become "3.5"
    asked = TextStream("en")
    assert asked.feed("Really?") == [] and asked.quiet() == ["Really?"]


def test_nothing_to_say_is_dropped_and_endless_text_is_handed_on_at_spaces() -> None:
    assert TextStream("en").feed("One. ... Two. Three ")[:1] == ["One."]
    assert TextStream("en").feed("... !!! ") == []
    endless = TextStream("en", limit=40)
    parts = endless.feed("word " * 30)  # no sentence end in sight: handed on all the same
    assert parts and all(len(p) <= 40 for p in parts)
    parts += endless.finish()
    assert " ".join(parts) == " ".join(["word"] * 30)


TOKENS = ["word", "Dr.", "end.", "3.5", "why?", "wow!", "e.g.", "\n", "“quoted.”", "U.S.", "x...", "你好。"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(TOKENS), min_size=1, max_size=60),
    st.lists(st.integers(1, 12), min_size=1, max_size=40),
    st.lists(st.booleans(), min_size=1, max_size=40),
)
def test_no_word_is_lost_repeated_or_reordered_however_the_text_is_cut(
    tokens: list[str], sizes: list[int], pauses: list[bool]
) -> None:
    text = " ".join(tokens)
    stream = TextStream("en", limit=60)
    out: list[str] = []
    at = 0
    for i in range(len(text)):
        size = sizes[i % len(sizes)]
        if at >= len(text):
            break
        out += stream.feed(text[at : at + size])
        at += size
        if pauses[i % len(pauses)]:
            out += stream.quiet()
    out += stream.finish()
    assert " ".join(out).split() == text.split()
    assert all(len(piece) <= 60 for piece in out)


def counting(chars: list[int]) -> Callable[[str], list[int]]:
    """The real segmenter, noting how many characters each call hands it."""

    def segment(text: str) -> list[int]:
        chars.append(len(text))
        return sentence_ends(text, "en")

    return segment


@pytest.mark.parametrize(
    ("piece", "count"),
    [("word ", 3000), ("Dr. ", 3000), ("He left. ", 2000), ("a. ", 3000), ("1", 10_000)],
)
def test_the_segmenter_sees_a_bounded_window_per_piece_however_much_came_before(piece: str, count: int) -> None:
    chars: list[int] = []
    stream = TextStream("en", segmenter=counting(chars))
    spelt = "Dr. Smith went home. It costs 3.5 now. "  # one-character pieces spell out sentences
    per_piece: list[int] = []
    for i in range(count):
        calls = len(chars)
        stream.feed(piece if len(piece) > 1 else spelt[i % len(spelt)])
        per_piece.append(sum(chars[calls:]))
        if i % 97 == 0:
            stream.quiet()
    bound = CONTEXT + LOOKAHEAD + len(PROBE) + 16
    assert max(per_piece) <= bound, max(per_piece)
    # And the first thousand pieces cost as much as the last: the work does not grow with what came before.
    assert sum(per_piece[-1000:]) <= 1.5 * sum(per_piece[:1000]) + bound


def test_a_large_piece_is_judged_in_a_few_bounded_windows() -> None:
    chars: list[int] = []
    stream = TextStream("en", limit=100_000, segmenter=counting(chars))
    text = "He left. Dr. Who came. " * 2000  # 46,000 characters in one piece
    pieces = stream.feed(text) + stream.finish()
    assert " ".join(pieces).split() == text.split()
    assert max(chars) <= 2000 + CONTEXT and sum(chars) <= 1.2 * len(text)


@pytest.mark.parametrize(
    ("start", "is_ssml"),
    [
        ("<speak>", True),
        ("  \n<speak version='1.0'>", True),
        ("\ufeff<speak>", True),
        ("<?xml version='1.0'?>\n<speak>", True),
        ("<!-- a comment --><speak>", True),
        ('<?xml version="1.0"?>\n<!DOCTYPE speak PUBLIC "-//W3C//DTD SYNTHESIS 1.0//EN" "s.dtd">\n<speak>', True),
        ("<!DOCTYPE speak [<!ENTITY a 'b>'>]><speak>", True),
        ("<speaker>", False),
        ("<3 you", False),
        ("Hello <speak>", False),
        ("", None),
        ("  ", None),
        ("<", None),
        ("<spe", None),
        ("<speak", None),
        ("<!-", None),
        ("<?xml version='1.0'", None),
        ("<!-- not closed yet ", None),
    ],
)
def test_the_start_of_a_stream_tells_ssml_from_text(start: str, is_ssml: bool | None) -> None:
    assert ssml_start(start) is is_ssml


def test_streamed_ssml_is_collected_whole_and_handed_on_as_it_came() -> None:
    pieces = ["<?xml version='1.0'?>", "<speak>Hello. ", "How are you? ", "<break time='1s'/>\n Fine.", "</speak>"]
    stream = TextStream("en")
    assert [stream.feed(p) for p in pieces] == [[]] * len(pieces)
    assert stream.ssml and not stream.waits_for_quiet and stream.quiet() == []
    assert stream.finish() == ["".join(pieces)]


def test_streamed_ssml_past_the_limit_is_refused() -> None:
    stream = TextStream("en", limit=50)
    stream.feed("<speak>")
    with pytest.raises(LimitError, match="at most 50 characters"):
        stream.feed("word " * 20)
    undecided = TextStream("en", limit=50)
    with pytest.raises(LimitError):
        undecided.feed("<!-- " + "x" * 60)  # a start that never tells is bounded too


def test_a_stream_of_spaces_keeps_nothing() -> None:
    stream = TextStream("en", limit=50)
    for _ in range(1000):
        assert stream.feed("   \n ") == []
    assert stream.pending == 0


# -- on an event loop -------------------------------------------------------------------------------------------

T = TypeVar("T")


def run(scenario: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(asyncio.wait_for(scenario, 30))  # a broken wake-up fails, not hangs


def test_queued_text_is_assembled_when_taken_and_a_pause_hands_on_the_open_sentence() -> None:
    async def scenario() -> list[str | None]:
        text = StreamedText(TextStream("en"), max_pending=1000, quiet=0.0)
        for piece in ["He ", "left. "]:
            text.put(piece)
        first = await text.take(100)  # no next word: only the pause completes it
        text.put("Is it? Yes. No")
        second = await text.take(100)
        text.close()
        return [first, second, await text.take(100), await text.take(100)]

    assert run(scenario()) == ["He left.", "Is it?", "Yes. No", None]  # "No" may go on: not judged yet


def test_too_much_waiting_text_fails_the_request() -> None:
    async def scenario() -> StreamedText:
        text = StreamedText(TextStream("en"), max_pending=100)
        text.put("word " * 19)
        with pytest.raises(LimitError, match="more than 100 characters"):
            text.put("word " * 2)
        text.put("ignored once failed")
        text.close()
        assert await text.take(100) is None
        return text

    assert run(scenario()).pending == 0


def test_ssml_past_its_limit_fails_when_taken() -> None:
    async def scenario() -> None:
        text = StreamedText(TextStream("en", limit=20), max_pending=1000)
        text.put("<speak>" + "word " * 10)
        with pytest.raises(LimitError):
            await text.take(100)
        assert text.failed
        text.close()
        assert await text.take(100) is None

    run(scenario())


def test_sentences_are_assembled_off_the_event_loop() -> None:
    threads: list[int] = []

    def segment(text: str) -> list[int]:
        threads.append(threading.get_ident())
        return sentence_ends(text, "en")

    async def scenario() -> list[str | None]:
        text = StreamedText(TextStream("en", segmenter=segment), max_pending=1000, quiet=0.0)
        text.put("He met Dr. Smith. Then he left. ")
        text.close()
        return [await text.take(100), await text.take(100)]

    loop_thread = threading.get_ident()  # asyncio.run runs the loop on this thread
    assert run(scenario()) == ["He met Dr. Smith. Then he left.", None]
    assert threads and loop_thread not in threads
