"""Books: an EPUB read in chapters with no markup spoken, a chaptered M4B with tags and cover, resume after a kill,
Markdown headings as chapters, broken EPUBs refused in one line, progress with chapters and time left."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

import book_helpers
from book_helpers import CHAPTERS, HOLD_ENV, OPF, exact_piper, make_epub, png
from helpers import read_pty, run_cli, screen_text, spawn_on_pty
from speakcli import engines
from speakcli.audio.aac import decode
from speakcli.audio.audiobook import ChapterSpan, Tags, cover_image, write_audiobook
from speakcli.batch import read_book
from speakcli.batch.xhtml import read_xhtml
from speakcli.cli import main
from speakcli.errors import ExitStatus, UsageError
from speakcli.testing import tone

HELPER = str(Path(__file__).parent / "book_helpers.py")
TEXTS = [text for _, texts in CHAPTERS for text in texts]


@pytest.fixture
def spoken(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This process speaks with the exact Piper voice; returns the texts it is asked to say."""
    monkeypatch.setitem(engines._REGISTRY, "piper", exact_piper)
    book_helpers.SPOKEN.clear()
    return book_helpers.SPOKEN


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _chapters(path: Path) -> list[tuple[str, float, float]]:
    """An MP4's chapter marks as a player reads them: (title, start, end) in seconds."""
    import av

    with av.open(str(path)) as container:
        return [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]))
            for c in container.chapters()
        ]


# --- reading, no engine --------------------------------------------------------------------------------------------


def test_an_epub_is_read_in_reading_order_in_its_chapters_with_its_own_titles(tmp_path: Path) -> None:
    book = read_book([str(make_epub(tmp_path / "book.epub"))])
    assert [(item.chapter, item.chapter_title, item.text) for item in book.items] == [
        (n, title, text) for n, (title, texts) in enumerate(CHAPTERS, 1) for text in texts
    ]
    assert [item.index for item in book.items] == list(range(1, len(TEXTS) + 1))
    assert book.items[0].source == "book.epub:OEBPS/text/chapter 1.xhtml:1"
    assert {item.language for item in book.items} == {"en-US"}  # the book's, as a JSONL row's language
    info = book.info
    assert (info.title, info.author, info.language) == ("The Test Book", "Ada Writer", "en-US")  # not the illustrator
    assert info.cover is not None and info.cover.data == png() and book.source == "book.epub"
    # --language given: the book's language is not the items'.
    assert {i.language for i in read_book([str(tmp_path / "book.epub")], book_language=False).items} == {None}


def test_an_epub_2_table_of_contents_gives_the_same_chapters(tmp_path: Path) -> None:
    opf = re.sub(r'\s*<item id="nav"[^>]*/>', "", OPF).replace('<itemref idref="nav"/>', "")
    epub = make_epub(tmp_path / "book.epub", files={"OEBPS/content.opf": opf, "OEBPS/nav.xhtml": None})
    assert [(i.chapter_title, i.text) for i in read_book([str(epub)]).items] == [
        (title, text) for title, texts in CHAPTERS for text in texts
    ]


@pytest.mark.parametrize(
    ("mode", "titles"),
    [
        ("heading", ["Chapter One", "Chapter Two"]),
        ("file", ["Chapter One", "Chapter Two"]),  # each document, titled by its first heading
        ("none", [None]),
    ],
)
def test_other_chapter_modes_of_an_epub(tmp_path: Path, mode: str, titles: list[str | None]) -> None:
    items = read_book([str(make_epub(tmp_path / "book.epub"))], chapters=mode)  # type: ignore[arg-type]
    assert [i.text for i in items.items] == TEXTS
    assert list(dict.fromkeys(i.chapter_title for i in items.items)) == titles


def test_xhtml_is_cleaned_to_what_a_reader_says() -> None:
    markup = """<!DOCTYPE html [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
    <html><head><title>T</title><script>alert(1)</script></head><body>
    <nav><a href="#a">Skip to content</a></nav>
    <p>A marker.<sup>[<a href="notes.xhtml#n2">2</a>]</sup> A star<a href="#s">*</a> and a <a href="#x">real link</a>.</p>
    <p>Soft\u00adhyphen, <span hidden="">hidden</span><span aria-hidden="true">decor</span>x<sup>2</sup>&secret;</p>
    <div role="doc-pagebreak" aria-label="3">3</div><p>Line one<br/>line two</p>
    <ol><li>First</li><li><p>Second</p></li></ol><table><tr><td>Cell</td></tr></table></body></html>"""
    doc = read_xhtml(markup)
    assert doc.title == "T"
    assert [b.text for b in doc.blocks] == [
        "A marker. A star and a real link.",
        "Softhyphen, x2&secret;",  # an entity the DOCTYPE declares is never expanded (nor any file read)
        "Line one line two",
        "First",
        "Second",
        "Cell",
    ]


def test_markdown_headings_make_chapters(tmp_path: Path) -> None:
    md = tmp_path / "notes.md"
    md.write_text(
        "# My Notes\n\nAn introduction.\n\n## First part\n\nOne.\nStill one.\n\n### A detail\n\nDetail.\n\n"
        "Second part\n-----------\n\nTwo.\n"
    )
    items = read_book([str(md)], split="paragraph", chapters="heading").items
    assert [(i.chapter, i.chapter_title, i.source, i.text) for i in items] == [
        (1, "My Notes", "notes.md:1", "My Notes"),  # the book's one title: above the chapter level
        (1, "My Notes", "notes.md:3", "An introduction."),
        (2, "First part", "notes.md:5", "First part"),
        (2, "First part", "notes.md:7", "One. Still one."),
        (2, "First part", "notes.md:10", "A detail"),  # a lower heading is spoken, and starts no chapter
        (2, "First part", "notes.md:12", "Detail."),
        (3, "Second part", "notes.md:14", "Second part"),
        (3, "Second part", "notes.md:17", "Two."),
    ]
    # Without --chapters heading, a text has no chapters (and its headings are plain lines).
    assert {i.chapter for i in read_book([str(md)]).items} == {None}
    both = read_book([str(md), str(md)], split="paragraph", chapters="file").items
    assert [i.chapter for i in both] == [1] * 8 + [2] * 8 and both[0].chapter_title == "notes"


BROKEN: dict[str, tuple[dict[str, str | bytes | None], str]] = {
    "drm": (
        {
            "META-INF/encryption.xml": '<encryption xmlns="urn:oasis:names:tc:opendocument:xmlns:container" '
            'xmlns:enc="http://www.w3.org/2001/04/xmlenc#"><enc:EncryptedData>'
            '<enc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#aes128-cbc"/>'
            '<enc:CipherData><enc:CipherReference URI="OEBPS/text/ch2.xhtml"/></enc:CipherData>'
            "</enc:EncryptedData></encryption>"
        },
        "book.epub is DRM-protected (META-INF/encryption.xml: its text is encrypted)",
    ),
    "adobe": ({"META-INF/rights.xml": "<rights/>"}, "book.epub is DRM-protected (META-INF/rights.xml"),
    "no container": ({"META-INF/container.xml": None}, "not a valid EPUB: META-INF/container.xml is missing"),
    "bad opf": ({"OEBPS/content.opf": "<package><metadata>"}, "OEBPS/content.opf is not well-formed XML"),
    "entities": (
        {"OEBPS/toc.ncx": '<!DOCTYPE ncx [<!ENTITY a "aaaaaaaa">]><ncx>&a;</ncx>'},
        "OEBPS/toc.ncx declares XML entities",
    ),
    "missing chapter": ({"OEBPS/text/ch2.xhtml": None}, "not a valid EPUB: OEBPS/text/ch2.xhtml is missing"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_a_broken_or_protected_epub_exits_2_in_one_line(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files, message = BROKEN[case]
    if case == "entities":  # the NCX is read only without an EPUB 3 nav
        opf = re.sub(r'\s*<item id="nav"[^>]*/>', "", OPF).replace('<itemref idref="nav"/>', "")
        files = {**files, "OEBPS/content.opf": opf}
    epub = make_epub(tmp_path / "book.epub", files=files)
    assert main(["batch", str(epub), "-d", str(tmp_path / "out"), "--engine", "piper"]) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()  # refused before anything was made


def test_a_file_that_is_no_epub_exits_2_in_one_line(tmp_path: Path) -> None:
    fake = tmp_path / "fake.epub"
    fake.write_text("just text")
    result = run_cli("batch", str(fake), "-d", str(tmp_path / "out"), "--engine", "piper")
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == ExitStatus.USAGE and len(lines) == 1, lines
    assert "fake.epub is not an EPUB (not a ZIP archive" in lines[0]


def test_options_that_need_an_audiobook_are_refused_without_one(tmp_path: Path) -> None:
    epub = str(make_epub(tmp_path / "book.epub"))
    for args, message in [
        (["--title", "X"], "--title tags the joined audiobook; add --concat FILE.m4b"),
        (["--cover", "c.png", "--concat", str(tmp_path / "a.wav")], "--cover tags the joined audiobook"),
        (["--chapters-out", str(tmp_path / "c.txt")], "--chapters-out gives times in the joined file; add --concat"),
        (["--chapters", "toc"], "--chapters"),
    ]:
        result = run_cli("batch", epub, "-d", str(tmp_path / "out"), "--engine", "piper", *args)
        assert result.returncode == ExitStatus.USAGE and message.encode() in result.stderr, (args, result.stderr)
        assert not (tmp_path / "out").exists()


def test_a_book_in_a_language_the_engine_lacks_is_refused_unless_language_is_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    epub = make_epub(tmp_path / "book.epub", files={"OEBPS/content.opf": OPF.replace(">en-US<", ">fr<")})
    assert main(["batch", str(epub), "-d", str(tmp_path / "out"), "--engine", "piper"]) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert (
        len(err) == 1
        and "book.epub is in 'fr', which the piper engine does not speak (it speaks en); pass --language" in err[0]
    )
    # --language wins over the book's: the language refused now is the one given.
    assert main(["batch", str(epub), "-d", str(tmp_path / "out"), "--engine", "piper", "-l", "de"]) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "language 'de' is not supported by the piper engine" in err[0], err


# --- the M4B writer, no engine -------------------------------------------------------------------------------------


def test_an_audiobook_file_has_its_chapters_tags_and_cover(tmp_path: Path) -> None:
    rate = 22050
    parts = [tone(1.0, rate), tone(0.5, rate, 660), tone(2.0, rate, 330)]
    chapters = [ChapterSpan("One", 0.0, 1.5), ChapterSpan("Two ü", 1.5, 3.5)]
    folder = tmp_path / "books"
    folder.mkdir()
    out = folder / "book.m4b"
    write_audiobook(out, iter(parts), rate, chapters, Tags("Title", "Author", cover_image(png(), "cover")))
    assert out.read_bytes()[4:12] == b"ftypM4B " and [p.name for p in folder.iterdir()] == ["book.m4b"]
    assert _chapters(out) == [("One", 0.0, 1.5), ("Two ü", 1.5, 3.5)]
    import av

    with av.open(str(out)) as container:
        meta = container.metadata
        assert (meta["title"], meta["artist"], meta["genre"], meta["media_type"]) == (
            "Title",
            "Author",
            "Audiobook",
            "2",
        )
        (picture,) = container.streams.video
        assert picture.disposition & av.stream.Disposition.attached_pic
        assert bytes(next(container.demux(picture))) == png()
    audio, got_rate = decode(out)
    assert got_rate == rate and 0 <= len(audio) - sum(map(len, parts)) < 2 * 1024
    # An image that is no JPEG or PNG is converted; one that is no image at all is a usage error.
    with pytest.raises(UsageError, match="is not an image"):
        cover_image(b"not an image", "cover.jpg")


# --- whole books with the Piper voice ------------------------------------------------------------------------------


def _item_lengths(out: Path, records: list[dict[str, Any]]) -> list[int]:
    return [sf.info(out / r["output"]).frames for r in records]


@pytest.mark.slow
def test_an_epub_becomes_a_chaptered_m4b(tmp_path: Path, spoken: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    epub, out, m4b = make_epub(tmp_path / "book.epub"), tmp_path / "out", tmp_path / "book.m4b"
    args = ["batch", str(epub), "-d", str(out), "--engine", "piper", "--concat", str(m4b), "--pause", "0.4"]
    assert main([*args, "--chapters-out", str(tmp_path / "chapters.json"), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)

    # What reached the engine: the text, in reading order, and nothing else (no tags, markers, menus, page numbers).
    assert spoken == TEXTS
    records = _manifest(out)
    assert [(r["chapter"], r["chapter_title"], r["text"], r["status"]) for r in records] == [
        (n, title, text, "ok") for n, (title, texts) in enumerate(CHAPTERS, 1) for text in texts
    ]
    assert [(c["chapter"], c["title"], c["first_item"], c["last_item"]) for c in summary["chapters"]] == [
        (1, "The Beginning", 1, 6),
        (2, "The End & After", 7, 9),
    ]

    # Each chapter mark is where its first item starts in the joined audio: items one after another, 0.4 s apart.
    rate = sf.info(out / records[0]["output"]).samplerate
    starts = np.cumsum([0] + [n + round(0.4 * rate) for n in _item_lengths(out, records)]) / rate
    total = starts[-1] - 0.4
    marks = _chapters(m4b)
    assert [title for title, _, _ in marks] == ["The Beginning", "The End & After"]
    expected = [(0.0, starts[6]), (starts[6], total)]
    for (_, start, end), (want_start, want_end) in zip(marks, expected, strict=True):
        assert abs(start - want_start) < 0.05 and abs(end - want_end) < 0.05
    assert [c["start"] for c in summary["chapters"]] == [0.0, round(starts[6], 3)]
    side = json.loads((tmp_path / "chapters.json").read_text())
    assert [(c["title"], c["start"]) for c in side] == [(t, round(s, 3)) for t, s, _ in marks]

    # The audio is all there, and the book's tags and cover came with it.
    audio, got_rate = decode(m4b)
    assert got_rate == rate and 0 <= len(audio) / rate - total < 2 * 1024 / rate + 0.001
    import av

    with av.open(str(m4b)) as container:
        assert (container.metadata["title"], container.metadata["artist"]) == ("The Test Book", "Ada Writer")
        assert bytes(next(container.demux(container.streams.video[0]))) == png()


@pytest.fixture
def hold(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "hold"
    folder.mkdir()
    (folder / "hold").touch()
    yield folder
    (folder / "hold").unlink(missing_ok=True)


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, f"exited with {proc.returncode} before {path.name}"
        assert time.monotonic() < deadline, f"no {path.name} in {timeout} s"
        time.sleep(0.02)  # another process's file: there is no event to wait on


@pytest.mark.slow
def test_a_book_killed_mid_way_resumes_to_the_same_chapters(
    tmp_path: Path, spoken: list[str], hold: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    epub = make_epub(tmp_path / "book.epub", extra_paragraphs=["Hold on, there is more.", "And then some."])
    whole = tmp_path / "whole"
    assert (
        main(["batch", str(epub), "-d", str(whole), "--engine", "piper", "-q", "--concat", str(tmp_path / "a.m4b")])
        == 0
    )

    # The same book, killed while the voice holds at "Hold on": four items made, the rest not.
    out = tmp_path / "out"
    cmd = [sys.executable, HELPER, "batch", str(epub), "-d", str(out), "--engine", "piper", "-q"]
    proc = subprocess.Popen(cmd, env={**os.environ, HOLD_ENV: str(hold)}, stderr=subprocess.DEVNULL)
    try:
        _wait_file(hold / "waiting", proc)
    finally:
        proc.kill()
        proc.wait(30)
    assert [r["text"] for r in _manifest(out)] == TEXTS[:5]

    capsys.readouterr()
    assert (
        main(["batch", str(epub), "-d", str(out), "--engine", "piper", "--concat", str(tmp_path / "b.m4b"), "--json"])
        == 0
    )
    summary = json.loads(capsys.readouterr().out)
    assert (summary["already_done"], summary["ok"]) == (5, len(TEXTS) + 2 - 5)
    # The resumed book is the uninterrupted one: the same chapters at the same times, the same manifest.
    assert _chapters(tmp_path / "b.m4b") == _chapters(tmp_path / "a.m4b")
    assert [c["title"] for c in summary["chapters"]] == ["The Beginning", "The End & After"]
    keep = ("index", "chapter", "chapter_title", "text", "output", "bytes")
    assert [{k: r[k] for k in keep} for r in _manifest(out)] == [{k: r[k] for k in keep} for r in _manifest(whole)]


@pytest.mark.slow
def test_progress_shows_the_chapter_items_and_time_left_on_a_terminal(tmp_path: Path, hold: Path) -> None:
    epub = make_epub(
        tmp_path / "book.epub",
        files={"OEBPS/text/ch2.xhtml": book_helpers.CHAPTER_2.replace("<p>Nobody", "<p>Hold there.</p><p>Nobody")},
    )
    argv = [sys.executable, HELPER, "batch", str(epub), "-d", str(tmp_path / "out"), "--engine", "piper"]
    proc, master = spawn_on_pty(argv, env={HOLD_ENV: str(hold)})
    try:
        # Held at chapter 2's "Hold there." (item 8): the line shows the chapter, the 7 items done, the audio
        # made and, once there is a speed, the time left. What is drawn after the release depends on when the
        # display refreshes, so the held line is what is checked.
        held = re.compile(r"chapter 2/2 The End & After .* 7/10 items, \d+\.\d s audio, .*left \d+:\d\d:\d\d")
        shown = read_pty(master, until=b"chapter 2/2 The End & After")
        while not held.search(screen_text(shown)):
            shown += read_pty(master, until=b"\r")
        (hold / "hold").unlink()
        shown += read_pty(master)
    finally:
        os.close(master)
        proc.wait(60)
    assert proc.returncode == 0
    screen = screen_text(shown)
    assert "joined" not in screen and "10 made, 0 already done, 0 failed of 10" in screen


def test_zip_members_past_the_limit_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speakcli.batch import epub as epub_module

    monkeypatch.setattr(epub_module, "MAX_MEMBER", 3000)
    book = make_epub(tmp_path / "book.epub", extra_paragraphs=["word " * 800])
    with zipfile.ZipFile(book) as z:
        assert z.getinfo("OEBPS/text/chapter 1.xhtml").file_size > 3000 > z.getinfo("OEBPS/content.opf").file_size
    with pytest.raises(UsageError, match=r"chapter 1\.xhtml is larger than"):
        read_book([str(book)])
