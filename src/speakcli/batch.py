"""Batch synthesis: items from text, JSONL or CSV; safe names, atomic files, a manifest, resume, concat."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import string
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from speakcli.audio import FORMATS, read_audio, write_audio
from speakcli.errors import OutputError, SpeakError, UsageError
from speakcli.fsutil import atomic_write, clean_stale_parts
from speakcli.text import has_speech

Split = Literal["line", "paragraph", "file"]
InputFormat = Literal["auto", "text", "jsonl", "csv"]
FIELDS = ("text", "voice", "language", "out", "speed")
MANIFEST = "manifest.jsonl"
# No {index} by default: a name must not change when a line is inserted above it (resume goes by name and content).
DEFAULT_TEMPLATE = "{slug}-{hash}"


@dataclass
class Item:
    """One thing to speak, where it came from, and (once planned) where its audio goes."""

    index: int
    source: str
    text: str = ""
    voice: str | None = None
    language: str | None = None
    out: str | None = None
    speed: float | None = None
    error: str | None = None  # a bad row: fails on its own, the run goes on
    skip: str | None = None  # why there is nothing to make (empty, only punctuation)
    output: str | None = None  # the file name inside the output folder
    key: str = ""  # a hash of everything that decides the audio; resume re-makes an item when it changes


@dataclass
class Result:
    index: int
    source: str
    text: str
    voice: str | None
    language: str | None
    output: str | None
    audio_seconds: float
    synthesis_seconds: float
    status: str  # ok (file made), skipped (nothing to say), failed
    error: str | None = None
    key: str = ""
    bytes: int = 0
    reason: str | None = None  # why a skipped item was skipped
    kept: bool = False  # ok, made by an earlier run and kept; the timings are that run's


@dataclass
class Summary:
    total: int = 0
    ok: int = 0  # made by this run
    already_done: int = 0  # made by an earlier run, same content, kept
    skipped: int = 0  # nothing to say
    failed: int = 0
    removed: int = 0  # files of earlier runs whose item is no longer in the input (kept on disk)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False
    concat: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)


# -- reading inputs -------------------------------------------------------------------------------------


def input_format(path: str, fmt: InputFormat) -> str:
    if fmt != "auto":
        return fmt
    suffix = Path(path).suffix.lower()
    return {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}.get(suffix, "text")


def _read_source(path: str, stdin: io.TextIOBase | None) -> tuple[str, str]:
    if path == "-":
        if stdin is None:
            raise UsageError("'-' reads stdin, but there is none")
        return "stdin", stdin.read()
    p = Path(path)
    try:
        return p.name, p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"input file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read input file {path} ({exc}); give UTF-8 text, JSONL or CSV") from None


def _text_items(name: str, content: str, split: Split) -> Iterator[tuple[str, str]]:
    if split == "file":
        if content.strip():
            yield f"{name}:1", content
        return
    if split == "paragraph":
        block: list[str] = []
        start = 1
        for lineno, line in enumerate(content.splitlines(), 1):
            if line.strip():
                if not block:
                    start = lineno
                block.append(line.strip())
            elif block:
                yield f"{name}:{start}", " ".join(block)
                block = []
        if block:
            yield f"{name}:{start}", " ".join(block)
        return
    for lineno, line in enumerate(content.splitlines(), 1):
        if line.strip():
            yield f"{name}:{lineno}", line.strip()


def _row_item(source: str, row: dict[str, Any]) -> Item:
    item = Item(index=0, source=source)
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        item.error = f"unknown field(s) {', '.join(unknown)}; use {', '.join(FIELDS)}"
        return item
    text = row.get("text")
    if text is None:
        item.error = "no text"
        return item
    if not isinstance(text, str):
        item.error = "text must be a string"
        return item
    item.text = text
    for name in ("voice", "language", "out"):
        value = row.get(name)
        if value not in (None, ""):
            if not isinstance(value, str):
                item.error = f"{name} must be a string"
                return item
            setattr(item, name, value)
    speed = row.get("speed")
    if speed not in (None, ""):
        try:
            item.speed = float(speed)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            item.error = f"speed {speed!r} is not a number"
            return item
        if not 0.25 <= item.speed <= 4.0:
            item.error = f"speed {item.speed} is out of range (0.25 to 4)"
    return item


def _jsonl_items(name: str, content: str) -> Iterator[Item]:
    # Each line stands alone: a bad one fails on its own (named by its line), the others are still made.
    for lineno, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        source = f"{name}:{lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Item(0, source, error=f"invalid JSON at column {exc.colno} ({exc.msg})")
            continue
        if not isinstance(row, dict):
            yield Item(0, source, error="not a JSON object")
            continue
        yield _row_item(source, row)


def _csv_items(name: str, content: str) -> list[Item]:
    """Rows by the csv module's rules; a row that does not fit the header refuses the whole file, naming it.

    A row with more fields than the header is almost always an unquoted comma: its columns cannot be trusted,
    and keeping only the first field would cut text silently.
    """
    reader = csv.reader(io.StringIO(content, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for row in reader:
            if row:  # a blank line reads as []
                rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise UsageError(
            f"{name}:{line}: not valid CSV ({exc}); quote fields that hold commas, quotes or newlines"
        ) from None
    if not rows:
        raise UsageError(f"{name} is empty; give a header line (e.g. text,voice) and rows")
    header_line, header = rows[0]
    header = [h.strip() for h in header]
    unknown = sorted(set(header) - set(FIELDS))
    if unknown or "text" not in header:
        what = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'text' column"
        raise UsageError(f"{name}:{header_line}: {what}; columns may be {', '.join(FIELDS)}")
    doubled = sorted({h for h in header if header.count(h) > 1})
    if doubled:
        raise UsageError(f"{name}:{header_line}: column(s) {', '.join(doubled)} given twice")
    misfits = [(lineno, len(row)) for lineno, row in rows[1:] if len(row) != len(header)]
    if misfits:
        lineno, n = misfits[0]
        more = f" (also line(s) {', '.join(str(m[0]) for m in misfits[1:6])}{', ...' if len(misfits) > 6 else ''})"
        hint = (
            'quote text that holds a comma ("Hello, world")'
            if n > len(header)
            else "give every column a field (an empty one is just its comma)"
        )
        raise UsageError(
            f"{name}:{lineno}: {n} field(s), but the header has {len(header)}{more if len(misfits) > 1 else ''}; {hint}"
        )
    return [_row_item(f"{name}:{lineno}", dict(zip(header, row, strict=True))) for lineno, row in rows[1:]]


def read_items(
    inputs: list[str], split: Split = "line", fmt: InputFormat = "auto", stdin: io.TextIOBase | None = None
) -> list[Item]:
    """Every item of every input, numbered from 1 in input order; bad rows carry their error, empty ones a skip."""
    items: list[Item] = []
    for path in inputs:
        name, content = _read_source(path, stdin)
        kind = input_format(path, fmt)
        if kind == "text":
            items += [Item(0, source, text) for source, text in _text_items(name, content, split)]
        elif kind == "jsonl":
            items += _jsonl_items(name, content)
        else:
            items += _csv_items(name, content)
    for i, item in enumerate(items, 1):
        item.index = i
        if item.error is None:
            # Engines vocalise punctuation-only text as noise; nothing is lost by not saying it.
            if not item.text.strip():
                item.skip = "empty"
            elif not has_speech(item.text):
                item.skip = "nothing to say (only punctuation or symbols)"
    return items


# -- naming outputs ----------------------------------------------------------------------------------------

_SLUG_RE = re.compile(r"[^a-z0-9]+")
_SAFE_RE = re.compile(r"[^A-Za-z0-9._ -]+")


def slug(text: str, n: int = 40) -> str:
    return _SLUG_RE.sub("-", text.lower()).strip("-")[:n].strip("-") or "item"


def safe_name(name: str, ext: str) -> str:
    """A plain file name from whatever a row says: its last path part, safe characters, our extension."""
    base = re.split(r"[\\/]", name.strip())[-1]
    base = _SAFE_RE.sub("_", base).strip(" .") or "item"
    stem, suffix = os.path.splitext(base)
    if suffix.lower() in FORMATS:
        return base if suffix.lower() == ext else stem + ext
    return base + ext


def text_hash(text: str) -> str:
    """A short hash of an item's text for its file name: tells apart texts with the same slug."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:8]


def _with_suffix_number(name: str, n: int) -> str:
    stem, ext = os.path.splitext(name)
    return f"{stem}-{n}{ext}"


TEMPLATE_FIELDS = ("slug", "hash", "index", "source")


def check_template(template: str) -> None:
    """Refuse a name template that is not plain fields: attribute or index access ({slug.__class__}) reads
    Python internals, and a bad format spec fails only when an item is named."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
        bad = [f for f in fields if f not in TEMPLATE_FIELDS]
        if bad:
            raise ValueError(f"unknown field {{{bad[0]}}}")
        template.format(index=1, slug="x", source="x", hash="x")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise UsageError(
            f"--name-template {template!r} is invalid ({exc}); use {{slug}}, {{hash}}, {{index}}, {{source}}"
        ) from None


def plan_outputs(
    items: list[Item],
    out_dir: Path,
    template: str,
    ext: str,
    engine_id: str,
    settings_of: Callable[[Item], Any] = lambda item: None,
) -> None:
    """Give each item to make a unique, safe output name inside out_dir, and a key of what decides its audio.

    Names come from the item (its `out`, or the template over its text), so they stay put when other items
    are inserted or removed. A name made twice (the same text twice) gets -2, -3, ... in input order; an
    explicit `out` given twice fails the later row. `settings_of(item)` adds what the caller resolves for an
    item (its effective voice, language, speed...) to the key.
    """
    check_template(template)
    todo = [item for item in items if item.error is None and item.skip is None]
    used: dict[str, int] = {}
    for item in todo:  # explicit names first: a generated name gives way to them, wherever they are
        if not item.out:
            continue
        name = safe_name(item.out, ext)
        if (out_dir / name).resolve().parent != out_dir.resolve():  # belt and braces: safe_name kept it plain
            item.error = f"output name {item.out!r} leaves the output folder"
        elif name in used or name == MANIFEST:
            item.error = f"output name {name!r} is already used by item {used.get(name, 'the manifest')}"
        else:
            used[name] = item.index
            item.output = name
    for item in todo:
        if item.out:
            continue
        fields = {"index": item.index, "slug": slug(item.text), "source": item.source, "hash": text_hash(item.text)}
        name = base = safe_name(template.format(**fields), ext)
        n = 1
        while name in used:
            n += 1
            name = _with_suffix_number(base, n)
        used[name] = item.index
        item.output = name
    for item in todo:
        if item.output is not None:
            blob = json.dumps([item.text, item.voice, item.language, item.speed, engine_id, ext, settings_of(item)])
            item.key = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# -- the manifest -----------------------------------------------------------------------------------------


def load_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The last record per output file; a line torn by a kill is ignored."""
    records: dict[str, dict[str, Any]] = {}
    path = out_dir / MANIFEST
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("output"):
            records[str(rec["output"])] = rec
    return records


def is_done(item: Item, out_dir: Path, manifest: dict[str, dict[str, Any]]) -> bool:
    """Whether a previous run already made exactly this item (same text, voice, settings; file whole)."""
    if item.output is None:
        return False
    rec = manifest.get(item.output)
    path = out_dir / item.output
    return bool(
        rec
        and rec.get("status") in ("ok", "removed")  # removed: its line left the input and came back
        and rec.get("key") == item.key
        and path.is_file()
        and path.stat().st_size == rec.get("bytes")
    )


class Manifest:
    """Append one JSON line per finished item; at the end, rewrite it compact and in order, atomically."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST
        self._fh = self.path.open("a", encoding="utf-8")

    def append(self, result: Result) -> None:
        self._fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")
        self._fh.flush()

    def close(self, items: list[Item], results: list[Result]) -> int:
        """Rewrite the manifest: this run's results, earlier records of items not reached (Ctrl-C), and the
        files of items no longer in the input as `removed` (the files stay). Returns how many are removed."""
        self._fh.close()
        out_dir = self.path.parent
        previous = load_manifest(out_dir)
        done = {r.index for r in results}
        records: list[dict[str, Any]] = [asdict(r) for r in results]
        planned = {item.output for item in items if item.output}
        for item in items:
            rec = previous.get(item.output or "")
            if item.index not in done and rec is not None:
                # Not reached this run: the record still says what its file holds; resume compares its key.
                status = "ok" if rec.get("status") == "removed" else rec.get("status")
                records.append({**rec, "index": item.index, "source": item.source, "status": status})
        removed = 0
        for name, rec in previous.items():
            # "skipped" with a file: how manifests before content keys listed items kept from an earlier run.
            made = rec.get("status") in ("ok", "removed") or (rec.get("status") == "skipped" and rec.get("bytes"))
            if name not in planned and made and (out_dir / name).is_file():
                records.append({**rec, "index": None, "status": "removed", "kept": False})
                removed += 1
        records.sort(key=lambda r: (r.get("index") is None, r.get("index") or 0, str(r.get("output"))))
        atomic_write(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())
        return removed


# -- running ---------------------------------------------------------------------------------------------


@dataclass
class BatchRun:
    """Runs planned items through `synthesize(item) -> (audio, synthesis seconds)`, one at a time, in order."""

    items: list[Item]
    out_dir: Path
    sample_rate: int
    synthesize: Callable[[Item], tuple[np.ndarray, float]]
    force: bool = False
    on_result: Callable[[Result], None] = lambda r: None
    stop: Callable[[], bool] = lambda: False

    def run(self) -> tuple[list[Result], Summary]:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_parts(self.out_dir)
        previous = {} if self.force else load_manifest(self.out_dir)
        manifest = Manifest(self.out_dir)
        results: list[Result] = []
        summary = Summary(total=len(self.items))
        started = time.monotonic()
        try:
            for item in self.items:
                if self.stop():
                    summary.interrupted = True
                    break
                result = self._one(item, previous)
                results.append(result)
                manifest.append(result)
                summary.audio_seconds += result.audio_seconds
                if result.status == "ok":
                    if result.kept:
                        summary.already_done += 1
                    else:
                        summary.ok += 1
                elif result.status == "skipped":
                    summary.skipped += 1
                else:
                    summary.failed += 1
                    summary.failures.append({"index": item.index, "source": item.source, "error": result.error})
                self.on_result(result)
        except KeyboardInterrupt:
            # Ctrl-C twice: the item in progress is dropped (its file is written whole or not at all); what is
            # done is kept, and the summary still comes.
            summary.interrupted = True
        finally:
            summary.removed = manifest.close(self.items, results)
            summary.wall_seconds = time.monotonic() - started
        return results, summary

    def _one(self, item: Item, previous: dict[str, dict[str, Any]]) -> Result:
        if item.error:
            return _result(item, "failed", error=item.error)
        if item.skip:
            return _result(item, "skipped", reason=item.skip)
        assert item.output is not None
        if is_done(item, self.out_dir, previous):
            rec = previous[item.output]
            return _result(
                item,
                "ok",
                audio=float(rec.get("audio_seconds") or 0.0),
                synth=float(rec.get("synthesis_seconds") or 0.0),
                size=int(rec["bytes"]),
                kept=True,
            )
        try:
            audio, seconds = self.synthesize(item)
            path = self.out_dir / item.output
            write_audio(path, audio, self.sample_rate)
        except SpeakError as exc:
            return _result(item, "failed", error=str(exc))
        except Exception as exc:  # an engine's own error (a missing package, a crash on odd text): this item only
            return _result(item, "failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        return _result(
            item, "ok", audio=round(len(audio) / self.sample_rate, 3), synth=round(seconds, 3), size=path.stat().st_size
        )


def _result(
    item: Item,
    status: str,
    audio: float = 0.0,
    synth: float = 0.0,
    size: int = 0,
    error: str | None = None,
    reason: str | None = None,
    kept: bool = False,
) -> Result:
    return Result(
        index=item.index,
        source=item.source,
        text=item.text,
        voice=item.voice,
        language=item.language,
        output=item.output,
        audio_seconds=audio,
        synthesis_seconds=synth,
        status=status,
        error=error,
        key=item.key,
        bytes=size,
        reason=reason,
        kept=kept,
    )


def concat(paths: list[Path], out: Path, sample_rate: int, pause: float) -> float:
    """Join finished items into one file with `pause` seconds between; returns its length in seconds."""
    gap = np.zeros(round(pause * sample_rate), np.float32)
    parts: list[np.ndarray] = []
    for i, path in enumerate(paths):
        audio, rate = read_audio(path)
        if rate != sample_rate:
            raise OutputError(f"{path} is {rate} Hz, not {sample_rate} Hz; rerun the batch with --force")
        if i:
            parts.append(gap)
        parts.append(audio)
    joined = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    write_audio(out, joined, sample_rate)
    return len(joined) / sample_rate
