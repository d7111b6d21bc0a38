"""Text splitting: every word kept once, in order, and no piece over the language's limit."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from speakcli import text as text_module
from speakcli.text import XTTS_CHAR_LIMITS, char_limit, has_speech, sentences, split_text


def test_sentences_respect_abbreviations_and_decimals() -> None:
    assert sentences("Hello Dr. Smith. It costs $3.50 today! Is it? Yes.") == [
        "Hello Dr. Smith.",
        "It costs $3.50 today!",
        "Is it?",
        "Yes.",
    ]


def test_newlines_and_runs_of_space_are_normalised() -> None:
    assert split_text("One line\nstill the same  sentence.\n\nTwo.") == ["One line still the same sentence.", "Two."]


def test_empty_text_gives_no_pieces() -> None:
    assert split_text(" \n\t ") == []


@pytest.mark.parametrize("language", sorted(XTTS_CHAR_LIMITS))
def test_long_sentence_is_cut_under_each_language_limit(language: str) -> None:
    sentence = ", ".join(f"clause number {i} goes on a while" for i in range(40)) + "."
    pieces = split_text(sentence, language)
    assert len(pieces) > 1
    assert all(len(p) <= char_limit(language) for p in pieces)
    assert " ".join(pieces).split() == sentence.split()


def test_clause_boundaries_are_preferred_over_word_boundaries() -> None:
    text = "a" * 100 + " b, " + "c " * 100 + "d."
    pieces = split_text(text, "en")
    assert len(text) > 250
    assert pieces[0].endswith("b,")


def test_a_word_longer_than_the_limit_is_cut_not_dropped() -> None:
    url = "https://example.org/" + "x" * 600
    pieces = split_text(f"See {url} now.", "en")
    assert all(len(p) <= 250 for p in pieces)
    assert "".join(pieces).replace(" ", "") == f"See{url}now."


def test_cjk_without_spaces_is_cut_at_the_chinese_limit() -> None:
    text = "今天天气很好" * 40 + "。"
    pieces = split_text(text, "zh-cn")
    assert all(len(p) <= 82 for p in pieces)
    assert "".join(pieces) == text


words = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1, max_size=30
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(words, st.sampled_from([" ", ". ", "! ", ", ", "\n", "? ", "; "])), max_size=120),
    st.sampled_from(["en", "de", "ja", "zh-cn", "hi", "ko"]),
)
def test_no_text_is_lost_or_repeated(parts: list[tuple[str, str]], language: str) -> None:
    text = "".join(w + sep for w, sep in parts)
    pieces = split_text(text, language)
    limit = char_limit(language)
    assert all(0 < len(p) <= limit for p in pieces)
    assert "".join("".join(pieces).split()) == "".join(text.split())


def test_long_paragraphs_are_segmented_in_bounded_windows(monkeypatch: pytest.MonkeyPatch) -> None:
    # pysbd is quadratic in its input: the splitter must never hand it more than one window.
    seen: list[int] = []
    real = text_module._segmenter("en")

    class Recording:
        def segment(self, text: str):  # type: ignore[no-untyped-def]
            seen.append(len(text))
            return real.segment(text)

    monkeypatch.setattr(text_module, "_segmenter", lambda language: Recording())
    big = "The quick brown fox jumps over the lazy dog. Is it? Yes, Dr. Smith said so! " * 3000  # 234 KB
    pieces = split_text(big, "en")
    assert max(seen) <= text_module.WINDOW
    assert sum(seen) < 2 * len(big)  # each character is segmented about once: linear work
    assert " ".join(pieces) == big.strip()


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.text(alphabet=st.sampled_from("abc XYZ.!?,;\n"), min_size=1, max_size=60),
        min_size=1,
        max_size=30,
    )
)
def test_windowing_never_drops_or_repeats_a_word(parts: list[str]) -> None:
    old = text_module.WINDOW
    text_module.WINDOW = 40  # small windows, so the carried and cut paths are exercised
    try:
        text = "".join(parts)
        pieces = split_text(text, "en", limit=25)
    finally:
        text_module.WINDOW = old
    assert "".join("".join(pieces).split()) == "".join(text.split())  # every character once, in order
    assert all(len(p) <= 25 for p in pieces)


def test_control_characters_are_cleaned_and_symbols_alone_have_no_speech() -> None:
    assert split_text("Hello\x00 there.\x1b[31m Fine.\x07") == ["Hello there.", "Fine."]
    assert not has_speech("... !!! ??? -- ** ##")
    assert has_speech("!!! 42 ???") and has_speech("…かな…") and has_speech("¿Qué?")
