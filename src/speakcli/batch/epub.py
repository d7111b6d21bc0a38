"""EPUB books: the spine in reading order, the table of contents, title, author, language and cover; DRM refused."""

from __future__ import annotations

import codecs
import posixpath
import re
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urldefrag

from speakcli.batch.xhtml import Document, TooManyBlocks, clean, read_xhtml
from speakcli.errors import UsageError

MAX_MEMBER = 64 * 1024 * 1024  # no book's chapter or cover is this large; a zip bomb's member is
# All that is read, together: a small archive may list one compressed member many times, or many members.
MAX_BOOK = 128 * 1024 * 1024
# Paragraphs in all, each an item held in memory (about 700 bytes): "<p>Hi.</p>" is 10 bytes, and compresses
# 400:1. The longest books (complete works, a Bible in verses) have tens of thousands.
MAX_PARAGRAPHS = 500_000
CONTENT_TYPES = frozenset({"application/xhtml+xml", "text/html", "application/html"})
COVER_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp", "image/bmp"})
# Font obfuscation (IDPF's and Adobe's) hides only fonts; any other encryption of a book's files is DRM.
_FONT_OBFUSCATION = frozenset({"http://www.idpf.org/2008/embedding", "http://ns.adobe.com/pdf/enc#RC"})
_DRM_FILES = ("META-INF/rights.xml", "META-INF/sinf.xml")  # Adobe ADEPT, Apple FairPlay
# Python codecs that decode bytes to text but are no document's character set: they would read a chapter as
# nothing ("punycode") or as escapes expanded ("unicode_escape").
_NOT_CHARSETS = frozenset({"idna", "punycode", "unicode-escape", "raw-unicode-escape", "undefined"})
_XML_ENCODING = re.compile(rb"""^<\?xml[^>]*encoding\s*=\s*["']([A-Za-z0-9._-]+)["']""")


@dataclass(frozen=True)
class Cover:
    """The book's cover image, as stored in it."""

    data: bytes
    media_type: str


@dataclass(frozen=True)
class BookInfo:
    """What a book says about itself: the defaults for the audiobook's tags and the language it is read in."""

    title: str | None = None
    author: str | None = None
    language: str | None = None
    cover: Cover | None = None


@dataclass(frozen=True)
class TocEntry:
    title: str
    path: str  # the content document, inside the archive
    anchor: str | None  # an element id in it, or None: its start
    depth: int = 1


@dataclass
class Part:
    """One content document of the spine and its text."""

    path: str
    document: Document


@dataclass
class Epub:
    """A book read from its archive: tags, the spine's documents in reading order, its table of contents."""

    info: BookInfo
    parts: list[Part] = field(default_factory=list)
    toc: list[TocEntry] = field(default_factory=list)


def _local(tag: object) -> str:
    return str(tag).rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> Iterator[ET.Element]:
    return (child for child in element if _local(child.tag) == name)


def _first(element: ET.Element, name: str) -> ET.Element | None:
    return next((e for e in element.iter() if _local(e.tag) == name), None)


def _attr(element: ET.Element, name: str) -> str | None:
    """An attribute by its local name, whatever its namespace (opf:role, epub:type...)."""
    for key, value in element.attrib.items():
        if _local(key) == name:
            return value
    return None


def _text(element: ET.Element | None) -> str | None:
    return (clean("".join(element.itertext())) or None) if element is not None else None


def _decode(data: bytes) -> str:
    """Text of an XML or XHTML file: its BOM, else its declared encoding, else UTF-8 (bad bytes replaced)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16", errors="replace")
    m = _XML_ENCODING.match(data.lstrip(b"\xef\xbb\xbf"))
    encoding = m.group(1).decode() if m else "utf-8"
    try:
        if codecs.lookup(encoding).name in _NOT_CHARSETS:
            encoding = "utf-8"
        return data.decode(encoding, errors="replace").lstrip("\ufeff")
    except (LookupError, UnicodeError):  # no such encoding, or one that refuses to replace bad bytes ("idna")
        return data.decode("utf-8", errors="replace").lstrip("\ufeff")


class _Archive:
    """The EPUB's ZIP archive, its members read bounded, its XML parsed without DTDs or entities."""

    def __init__(self, path: Path) -> None:
        self.name = path.name
        try:
            self.zip = zipfile.ZipFile(path)
        except FileNotFoundError:
            raise UsageError(f"input file {path} does not exist") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise UsageError(f"{path.name} is not an EPUB (not a ZIP archive: {exc}); give an .epub file") from None
        self.members = set(self.zip.namelist())
        self.total = 0  # bytes read from the archive so far, uncompressed

    def bad(self, what: str) -> UsageError:
        return UsageError(f"{self.name} is not a valid EPUB: {what}")

    def read(self, member: str) -> bytes:
        if member not in self.members:
            raise self.bad(f"{member} is missing")
        left = MAX_BOOK - self.total
        try:
            size = self.zip.getinfo(member).file_size
            if size > MAX_MEMBER:
                raise self.bad(f"{member} is larger than {MAX_MEMBER // 2**20} MiB")
            if size > left:
                raise self._too_large()
            with self.zip.open(member) as fh:
                data = fh.read(min(MAX_MEMBER, left) + 1)  # the header's size may lie: read no more than the limits
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError) as exc:
            raise self.bad(f"cannot read {member} ({exc})") from None
        if len(data) > MAX_MEMBER:
            raise self.bad(f"{member} is larger than {MAX_MEMBER // 2**20} MiB")
        if len(data) > left:
            raise self._too_large()
        self.total += len(data)
        return data

    def _too_large(self) -> UsageError:
        return self.bad(f"its text and cover are larger than {MAX_BOOK // 2**20} MiB in all, uncompressed")

    def xml(self, member: str) -> ET.Element:
        text = _decode(self.read(member))
        if "<!ENTITY" in text:  # an entity could read a file or multiply text: no real EPUB declares one
            raise self.bad(f"{member} declares XML entities, which speakcli never reads")
        try:
            return ET.fromstring(text)
        except ET.ParseError as exc:
            raise self.bad(f"{member} is not well-formed XML ({exc})") from None

    def close(self) -> None:
        self.zip.close()


def _check_drm(archive: _Archive) -> None:
    """Refuse a book whose text is encrypted, in one line: reading it would speak noise or nothing."""
    drm = [name for name in _DRM_FILES if name in archive.members]
    if "META-INF/encryption.xml" in archive.members:
        root = archive.xml("META-INF/encryption.xml")
        for data in (e for e in root.iter() if _local(e.tag) == "EncryptedData"):
            method = _first(data, "EncryptionMethod")
            if method is None or method.get("Algorithm") not in _FONT_OBFUSCATION:
                drm.append("META-INF/encryption.xml")
                break
    if drm:
        raise UsageError(
            f"{archive.name} is DRM-protected ({drm[0]}: its text is encrypted); speakcli reads only DRM-free EPUBs"
        )


def _join(base: str, href: str) -> tuple[str, str | None]:
    """A link in the archive's file `base`, as (member path, fragment or None)."""
    url, fragment = urldefrag(href)
    path = posixpath.normpath(posixpath.join(posixpath.dirname(base), unquote(url))) if url else base
    return path.lstrip("/"), (unquote(fragment) or None)


def read_epub(path: Path) -> Epub:
    """The book at `path`; a usage error (one line) when it is not an EPUB, is broken, or is DRM-protected."""
    archive = _Archive(path)
    try:
        return _read(archive)
    finally:
        archive.close()


def _read(archive: _Archive) -> Epub:
    _check_drm(archive)
    rootfile = _first(archive.xml("META-INF/container.xml"), "rootfile")
    opf_path = rootfile.get("full-path") if rootfile is not None else None
    if not opf_path:
        raise archive.bad("META-INF/container.xml names no package document")
    opf = archive.xml(opf_path)
    manifest: dict[str, tuple[str, str, set[str]]] = {}  # id -> (path, media type, properties)
    for item in (e for e in opf.iter() if _local(e.tag) == "item"):
        href, item_id = item.get("href"), item.get("id")
        if href and item_id:
            target, _ = _join(opf_path, href)
            manifest[item_id] = (target, item.get("media-type", ""), set(item.get("properties", "").split()))
    spine = _first(opf, "spine")
    if spine is None:
        raise archive.bad(f"{opf_path} has no spine (reading order)")
    nav = next((p for p, _, props in manifest.values() if "nav" in props), None)
    ncx_id = spine.get("toc")
    ncx = manifest[ncx_id][0] if ncx_id in manifest else None
    toc = _nav_toc(archive, nav) if nav else []
    if not toc and ncx:
        toc = _ncx_toc(archive, ncx)
    anchors: dict[str, set[str]] = {}
    for entry in toc:
        if entry.anchor:
            anchors.setdefault(entry.path, set()).add(entry.anchor)
    parts = []
    paragraphs = 0
    for ref in _children(spine, "itemref"):
        found = manifest.get(ref.get("idref", ""))
        if found is None or ref.get("linear") == "no":
            continue  # not in the reading order (a pop-up, a cover shown apart)
        doc_path, media_type, _ = found
        if media_type not in CONTENT_TYPES or doc_path == nav:
            continue  # an image page, or the table of contents itself: nothing to read aloud
        text = _decode(archive.read(doc_path))
        try:
            document = read_xhtml(text, frozenset(anchors.get(doc_path, ())), MAX_PARAGRAPHS - paragraphs)
        except TooManyBlocks:
            raise archive.bad(f"it has more than {MAX_PARAGRAPHS:,} paragraphs") from None
        paragraphs += len(document.blocks)
        parts.append(Part(doc_path, document))
    if not parts:
        raise archive.bad(f"{opf_path}'s spine lists no content documents")
    return Epub(_info(archive, opf, manifest), parts, toc)


def _info(archive: _Archive, opf: ET.Element, manifest: dict[str, tuple[str, str, set[str]]]) -> BookInfo:
    metadata = _first(opf, "metadata")
    if metadata is None:
        return BookInfo()
    roles = {  # EPUB 3 gives a creator's role in a <meta refines="#id" property="role">
        (m.get("refines") or "").lstrip("#"): (m.text or "").strip()
        for m in metadata.iter()
        if _local(m.tag) == "meta" and m.get("property") == "role"
    }
    authors = []
    for creator in (e for e in metadata if _local(e.tag) == "creator"):
        role = _attr(creator, "role") or roles.get(creator.get("id", ""), "aut")
        name = _text(creator)
        if name and role in ("aut", ""):
            authors.append(name)
    cover_item = next((i for i, (_, _, props) in manifest.items() if "cover-image" in props), None)
    if cover_item is None:  # EPUB 2: <meta name="cover" content="item id">
        meta = next((m for m in metadata.iter() if _local(m.tag) == "meta" and m.get("name") == "cover"), None)
        cover_item = meta.get("content") if meta is not None else None
    cover = None
    if cover_item in manifest and manifest[cover_item][1] in COVER_TYPES:
        cover_path, media_type, _ = manifest[cover_item]
        cover = Cover(archive.read(cover_path), media_type)
    return BookInfo(
        title=_text(next((e for e in metadata if _local(e.tag) == "title"), None)),
        author=", ".join(authors) or None,
        language=_text(next((e for e in metadata if _local(e.tag) == "language"), None)),
        cover=cover,
    )


def _nav_toc(archive: _Archive, nav: str) -> list[TocEntry]:
    """EPUB 3's table of contents: the links of its <nav epub:type="toc">, nesting level by level."""
    from html.parser import HTMLParser

    entries: list[TocEntry] = []

    class Nav(HTMLParser):
        def __init__(self) -> None:
            super().__init__(convert_charrefs=True)
            self.depth = 0  # inside the toc nav: how deep in its lists
            self.nav = 0  # open <nav>s since the toc's
            self.link: tuple[str, list[str]] | None = None

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            a = dict(attrs)
            if tag == "nav":
                if self.nav or "toc" in (a.get("epub:type") or "").split() or a.get("role") == "doc-toc":
                    self.nav += 1
            elif self.nav and tag == "ol":
                self.depth += 1
            elif self.nav and tag == "a" and a.get("href"):
                self.link = (a["href"] or "", [])

        def handle_endtag(self, tag: str) -> None:
            if tag == "nav" and self.nav:
                self.nav -= 1
            elif self.nav and tag == "ol":
                self.depth -= 1
            elif tag == "a" and self.link is not None:
                href, words = self.link
                self.link = None
                title = clean("".join(words))
                if title:
                    entries.append(TocEntry(title, *_join(nav, href), depth=max(self.depth, 1)))

        def handle_data(self, data: str) -> None:
            if self.link is not None:
                self.link[1].append(data)

    parser = Nav()
    parser.feed(_decode(archive.read(nav)))
    parser.close()
    return entries


def _ncx_toc(archive: _Archive, ncx: str) -> list[TocEntry]:
    """EPUB 2's table of contents (toc.ncx): its navPoints in document order, nesting included."""
    root = archive.xml(ncx)
    nav_map = _first(root, "navMap")
    entries: list[TocEntry] = []

    # Depth first with a stack of its own, not recursion: a hostile NCX nests navPoints thousands deep.
    stack = [] if nav_map is None else [(point, 1) for point in reversed(list(_children(nav_map, "navPoint")))]
    while stack:
        point, depth = stack.pop()
        label, content = next(_children(point, "navLabel"), None), next(_children(point, "content"), None)
        title = _text(label)
        if title and content is not None and content.get("src"):
            entries.append(TocEntry(title, *_join(ncx, content.get("src", "")), depth=depth))
        stack += [(child, depth + 1) for child in reversed(list(_children(point, "navPoint")))]
    return entries
