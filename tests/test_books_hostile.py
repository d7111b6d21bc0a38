"""Hostile books: archives inflating past the limit, quadratic markup, escapes in titles, a deep table of contents."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from book_helpers import OPF, make_epub
from speakcli.batch import epub as epub_module
from speakcli.batch import read_book
from speakcli.batch.xhtml import read_xhtml
from speakcli.errors import UsageError


def test_a_small_archive_that_lists_one_member_many_times_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One compressed chapter named by 200 spine entries: each read alone is under the member limit, together they
    # are 200 times the chapter (a 96 KB file of this shape inflated to 12 GB of text).
    items = "".join(f'<item id="b{i}" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>' for i in range(200))
    refs = "".join(f'<itemref idref="b{i}"/>' for i in range(200))
    opf = OPF.replace("</manifest>", items + "</manifest>").replace("</spine>", refs + "</spine>")
    monkeypatch.setattr(epub_module, "MAX_BOOK", 20_000)
    read_book([str(make_epub(tmp_path / "plain.epub"))])  # the same book without the repeats is under the limit
    with pytest.raises(UsageError, match=r"book\.epub is not a valid EPUB: its text and cover are larger than"):
        read_book([str(make_epub(tmp_path / "book.epub", files={"OEBPS/content.opf": opf}))])


def _cost(make: Callable[[int], str], size: int) -> float:
    markup = make(size)
    started = time.process_time()
    document = read_xhtml(markup)
    spent = time.process_time() - started
    assert [b.text for b in document.blocks][-1:] == ["end"]  # the text after the hostile part is still read
    return spent


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda n: "<!DOCTYPE a[" * n + "<p>end</p>", id="unclosed DOCTYPE subsets"),
        pytest.param(lambda n: "<body>" + "<div>" * n + "</span>" * n + "<p>end</p>", id="stray end tags, deep"),
    ],
)
def test_hostile_markup_is_read_in_linear_time(make: Callable[[int], str]) -> None:
    small, large = 2_000, 16_000
    spent = [min(_cost(make, size) for _ in range(2)) for size in (small, large)]
    # Eight times the input: about eight times the work when linear, sixty-four when quadratic.
    assert spent[1] < max(spent[0], 0.01) * 8 * 3, spent


def test_a_books_titles_carry_no_terminal_escapes(tmp_path: Path) -> None:
    from book_helpers import NAV
    from speakcli.cli.progress import _short

    # EPUB 3's table of contents is read by an HTML parser, which passes raw control characters through.
    nav = NAV.replace("The Beginning", "The \x1b]0;owned\x07Beginning\x1b[2J")
    book = read_book([str(make_epub(tmp_path / "book.epub", files={"OEBPS/nav.xhtml": nav}))])
    assert {item.chapter_title for item in book.items} == {"The ]0;owned Beginning", "The End & After"}
    assert _short("a\x1b[31mred\x1b[0m\x07 title") == "a red title"


def test_a_table_of_contents_nested_thousands_deep_is_read(tmp_path: Path) -> None:
    import re

    from book_helpers import NCX

    opf = re.sub(r'\s*<item id="nav"[^>]*/>', "", OPF).replace('<itemref idref="nav"/>', "")  # the NCX is read
    point = '<navPoint id="p{n}"><navLabel><text>Level {n}</text></navLabel><content src="text/ch2.xhtml"/>'
    deep = "".join(point.format(n=n) for n in range(5000)) + "</navPoint>" * 5000  # past Python's recursion limit
    ncx = NCX.replace("<navMap>", "<navMap>" + deep)
    book = epub_module.read_epub(
        make_epub(tmp_path / "book.epub", files={"OEBPS/content.opf": opf, "OEBPS/toc.ncx": ncx})
    )
    assert [(e.title, e.depth) for e in book.toc[:2]] == [("Level 0", 1), ("Level 1", 2)]
    assert book.toc[4999].depth == 5000 and book.toc[5000].title == "The Beginning"


@pytest.mark.parametrize("encoding", ["idna", "undefined", "punycode"])
def test_a_chapter_declaring_a_codec_that_is_no_charset_is_read_as_utf8(tmp_path: Path, encoding: str) -> None:
    from book_helpers import CHAPTER_2

    # idna and undefined refused to decode at all (UnicodeError: exit 1); punycode read the chapter as nothing.
    chapter = CHAPTER_2.replace('encoding="UTF-8"', f'encoding="{encoding}"')
    book = read_book([str(make_epub(tmp_path / "book.epub", files={"OEBPS/text/ch2.xhtml": chapter}))])
    assert [i.text for i in book.items if i.chapter == 2][-1] == "Nobody minded at all."


def test_a_book_of_more_paragraphs_than_the_limit_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Each paragraph becomes an item in memory: 400,000 "<p>Hi.</p>" compress to a 10 KB EPUB and took 266 MB.
    monkeypatch.setattr(epub_module, "MAX_PARAGRAPHS", 30)
    read_book([str(make_epub(tmp_path / "plain.epub"))])  # the test book's paragraphs are under it
    many = "<body>" + "<p>Hi.</p>" * 31 + "</body>"
    with pytest.raises(UsageError, match=r"book\.epub is not a valid EPUB: it has more than 30 paragraphs"):
        read_book([str(make_epub(tmp_path / "book.epub", files={"OEBPS/text/ch2.xhtml": many}))])


def test_many_chapters_at_one_place_make_one_short_title(tmp_path: Path) -> None:
    from book_helpers import NAV
    from speakcli.batch import sections

    # 80,000 entries pointing at one place took 67 s (each name compared with all before it) and made one title
    # of all their names, written in every item's manifest row.
    links = "".join(f'<li><a href="text/chapter%201.xhtml#nowhere">Entry {i}</a></li>' for i in range(5000))
    nav = NAV.replace('<li><a href="text/chapter%201.xhtml">', links + '<li><a href="text/chapter%201.xhtml">')
    long_title = "The End " + "and after " * 100
    nav = nav.replace("The End &amp; After", long_title)
    book = read_book([str(make_epub(tmp_path / "book.epub", files={"OEBPS/nav.xhtml": nav}))])
    titles = [t for t in dict.fromkeys(item.chapter_title for item in book.items) if t]
    assert titles[0] == "Entry 0: Entry 1: Entry 2" and len(titles) == 2, titles
    assert len(titles[1]) == sections.MAX_TITLE and titles[1].startswith("The End and after")
