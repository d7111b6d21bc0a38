"""A small EPUB made for the tests, and the exact Piper voice (noise off) that also records what it is asked to say.

Run as a script (`python tests/book_helpers.py batch ...`), it is speakcli's CLI with that voice, in a child process
a test can kill; with BOOK_HOLD set to a folder, the voice waits before a text starting with "Hold" until the file
`hold` there is gone, so the test knows where the run is.
"""

from __future__ import annotations

import os
import struct
import sys
import time
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from speakcli import engines
from speakcli.engines import EngineSpec
from speakcli.engines.piper import PiperEngine

HOLD_ENV = "BOOK_HOLD"
SPOKEN: list[str] = []  # every text the exact voice was asked to say, in this process


class ExactPiper(PiperEngine):
    """The bundled voice with its noise off: the same text gives the same samples in any process."""

    def __init__(self) -> None:
        super().__init__(noise_scale=0.0, noise_w_scale=0.0)

    def synthesize(self, text: str, voice: Any, options: Any) -> Iterator[Any]:
        SPOKEN.append(text)
        folder = os.environ.get(HOLD_ENV)
        if folder and text.startswith("Hold") and (Path(folder) / "hold").exists():
            (Path(folder) / "waiting").touch()
            deadline = time.monotonic() + 120
            while (Path(folder) / "hold").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # another process lifts the hold (or kills this one): poll the file, with a deadline
        yield from super().synthesize(text, voice, options)


def exact_piper(spec: EngineSpec) -> PiperEngine:
    return ExactPiper()


def png(width: int = 8, height: int = 6) -> bytes:
    """A small red PNG image."""
    raw = b"".join(b"\x00" + b"\xc0\x10\x10" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


CONTAINER = """<?xml version="1.0"?>
<container version="1.0" xmlns="urn:oasis:names:tc:opendocument:xmlns:container">
  <rootfiles><rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/></rootfiles>
</container>"""

OPF = """<?xml version="1.0" encoding="UTF-8"?>
<package xmlns="http://www.idpf.org/2007/opf" version="3.0" unique-identifier="id">
  <metadata xmlns:dc="http://purl.org/dc/elements/1.1/">
    <dc:identifier id="id">urn:uuid:0b9a7e8c-test</dc:identifier>
    <dc:title>The Test Book</dc:title>
    <dc:creator id="author">Ada Writer</dc:creator>
    <dc:creator id="ill">Ivan Drawer</dc:creator>
    <meta refines="#ill" property="role" scheme="marc:relators">ill</meta>
    <dc:language>en-US</dc:language>
  </metadata>
  <manifest>
    <item id="nav" href="nav.xhtml" media-type="application/xhtml+xml" properties="nav"/>
    <item id="ncx" href="toc.ncx" media-type="application/x-dtbncx+xml"/>
    <item id="cover-image" href="images/cover.png" media-type="image/png" properties="cover-image"/>
    <item id="cover" href="cover.xhtml" media-type="application/xhtml+xml"/>
    <item id="ch1" href="text/chapter%201.xhtml" media-type="application/xhtml+xml"/>
    <item id="ch2" href="text/ch2.xhtml" media-type="application/xhtml+xml"/>
  </manifest>
  <spine toc="ncx">
    <itemref idref="cover"/>
    <itemref idref="nav"/>
    <itemref idref="ch1"/>
    <itemref idref="ch2"/>
  </spine>
</package>"""

NAV = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Contents</title></head>
<body>
  <h1>Contents</h1>
  <nav epub:type="toc" id="toc"><ol>
    <li><a href="text/chapter%201.xhtml">The Beginning</a></li>
    <li><a href="text/ch2.xhtml#start">The End &amp; After</a></li>
  </ol></nav>
  <nav epub:type="landmarks"><ol><li><a epub:type="bodymatter" href="text/chapter%201.xhtml">Start</a></li></ol></nav>
</body></html>"""

NCX = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE ncx PUBLIC "-//NISO//DTD ncx 2005-1//EN" "http://www.daisy.org/z3986/2005/ncx-2005-1.dtd">
<ncx xmlns="http://www.daisy.org/z3986/2005/ncx/" version="2005-1">
  <navMap>
    <navPoint id="p1" playOrder="1"><navLabel><text>The Beginning</text></navLabel>
      <content src="text/chapter%201.xhtml"/></navPoint>
    <navPoint id="p2" playOrder="2"><navLabel><text>The End &amp; After</text></navLabel>
      <content src="text/ch2.xhtml#start"/></navPoint>
  </navMap>
</ncx>"""

COVER = """<?xml version="1.0" encoding="UTF-8"?>
<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Cover</title></head>
<body><div><img src="images/cover.png" alt="Cover"/></div></body></html>"""

CHAPTER_1 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Chapter 1</title><style>p { margin: 0 }</style></head>
<body>
  <section epub:type="chapter">
    <h1>Chapter One</h1>
    <p>Once upon a time there was a <em>small</em> test.<sup><a epub:type="noteref" href="#fn1" id="r1">1</a></sup></p>
    <p>It had three things:</p>
    <ul>
      <li>Red apples</li>
      <li>Green <b>pears</b></li>
    </ul>
    {extra}
    <aside epub:type="footnote" id="fn1"><p><a href="#r1">1</a> A footnote explains the test.</p></aside>
  </section>
</body></html>"""

CHAPTER_2 = """<?xml version="1.0" encoding="UTF-8"?>
<!DOCTYPE html>
<html xmlns="http://www.w3.org/1999/xhtml" xmlns:epub="http://www.idpf.org/2007/ops">
<head><title>Chapter 2</title></head>
<body>
  <section epub:type="chapter" id="start">
    <h1>Chapter Two</h1>
    <p>The end came quickly&#160;&amp; quietly.<span epub:type="pagebreak" id="page7" title="7">7</span></p>
    <p>Nobody minded at all.</p>
  </section>
</body></html>"""

# What the book says aloud, chapter by chapter: headings, paragraphs, list items, the footnote after its chapter.
CHAPTERS = [
    (
        "The Beginning",
        [
            "Chapter One",
            "Once upon a time there was a small test.",
            "It had three things:",
            "Red apples",
            "Green pears",
            "A footnote explains the test.",
        ],
    ),
    ("The End & After", ["Chapter Two", "The end came quickly & quietly.", "Nobody minded at all."]),
]


def make_epub(
    path: Path,
    extra_paragraphs: list[str] = (),
    files: dict[str, str | bytes | None] | None = None,  # type: ignore[assignment]
) -> Path:
    """The test book at `path`: two chapters, a table of contents (EPUB 3 nav and EPUB 2 NCX), a cover, a footnote,
    a list. `extra_paragraphs` go at the end of chapter one (before its footnote); `files` replaces archive members
    (None removes one)."""
    extra = "\n".join(f"<p>{p}</p>" for p in extra_paragraphs)
    members: dict[str, str | bytes | None] = {
        "META-INF/container.xml": CONTAINER,
        "OEBPS/content.opf": OPF,
        "OEBPS/nav.xhtml": NAV,
        "OEBPS/toc.ncx": NCX,
        "OEBPS/cover.xhtml": COVER,
        "OEBPS/images/cover.png": png(),
        "OEBPS/text/chapter 1.xhtml": CHAPTER_1.replace("{extra}", extra),
        "OEBPS/text/ch2.xhtml": CHAPTER_2,
        **(files or {}),
    }
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(zipfile.ZipInfo("mimetype"), "application/epub+zip")  # first and stored, as the format asks
        for name, data in members.items():
            if data is not None:
                z.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return path


if __name__ == "__main__":
    from speakcli.cli import main

    engines.register("piper", exact_piper)
    sys.exit(main(sys.argv[1:]))
