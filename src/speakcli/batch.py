"""Batch synthesis: items from text, JSONL or CSV; safe names, atomic files, a manifest, resume, concat."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from speakcli.audio import FORMATS, read_audio, write_audio
from speakcli.errors import OutputError, SpeakError, UsageError
from speakcli.fsutil import atomic_write, clean_stale_parts

Split = Literal["line", "paragraph", "file"]
InputFormat = Literal["auto", "text", "jsonl", "csv"]
FIELDS = ("text", "voice", "language", "out", "speed")
MANIFEST = "manifest.jsonl"
DEFAULT_TEMPLATE = "{index:04d}-{slug}"


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
    output: str | None = None  # the file name inside the output folder
    key: str = ""


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
    status: str  # ok, skipped (already done), failed
    error: str | None = None
    key: str = ""
    bytes: int = 0


@dataclass
class Summary:
    total: int = 0
    ok: int = 0
    skipped: int = 0
    failed: int = 0
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
    if not isinstance(text, str) or not text.strip():
        item.error = "no text"
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


def read_items(
    inputs: list[str], split: Split = "line", fmt: InputFormat = "auto", stdin: io.TextIOBase | None = None
) -> list[Item]:
    """Every item of every input, numbered from 1 in input order; bad rows carry their error."""
    items: list[Item] = []
    for path in inputs:
        name, content = _read_source(path, stdin)
        kind = input_format(path, fmt)
        if kind == "text":
            items += [Item(0, source, text) for source, text in _text_items(name, content, split)]
        elif kind == "jsonl":
            for lineno, line in enumerate(content.splitlines(), 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    items.append(Item(0, f"{name}:{lineno}", error=f"invalid JSON ({exc.msg})"))
                    continue
                if not isinstance(row, dict):
                    items.append(Item(0, f"{name}:{lineno}", error="not a JSON object"))
                    continue
                items.append(_row_item(f"{name}:{lineno}", row))
        else:
            reader = csv.DictReader(io.StringIO(content))
            header = reader.fieldnames or []
            unknown = sorted(set(header) - set(FIELDS))
            if unknown or "text" not in header:
                what = f"unknown column(s) {', '.join(unknown)}" if unknown else "no 'text' column"
                raise UsageError(f"{name}: {what}; columns may be {', '.join(FIELDS)}")
            for row in reader:
                items.append(_row_item(f"{name}:{reader.line_num}", {k: v for k, v in row.items() if k is not None}))
    for i, item in enumerate(items, 1):
        item.index = i
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


def plan_outputs(items: list[Item], out_dir: Path, template: str, ext: str, engine_id: str) -> None:
    """Give each good item a unique, safe output name inside out_dir, and a key of what decides its audio."""
    used: dict[str, int] = {}
    for item in items:
        if item.error:
            continue
        if item.out:
            name = safe_name(item.out, ext)
        else:
            try:
                name = safe_name(template.format(index=item.index, slug=slug(item.text), source=item.source), ext)
            except (KeyError, IndexError, ValueError) as exc:
                raise UsageError(f"--name-template {template!r} is invalid ({exc}); use {{index}}, {{slug}}") from None
        resolved = (out_dir / name).resolve()
        if resolved.parent != out_dir.resolve():  # belt and braces: safe_name already kept it a plain name
            item.error = f"output name {item.out!r} leaves the output folder"
            continue
        if name in used:
            item.error = f"output name {name!r} is already used by item {used[name]}"
            continue
        used[name] = item.index
        item.output = name
        blob = json.dumps([item.text, item.voice, item.language, item.speed, engine_id, ext])
        item.key = hashlib.sha256(blob.encode()).hexdigest()[:32]


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
        and rec.get("status") in ("ok", "skipped")
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

    def close(self, results: list[Result]) -> None:
        self._fh.close()
        merged: dict[str, dict[str, Any]] = dict(load_manifest(self.path.parent))
        for r in results:
            # A row that failed before it got a name is still listed, by its index.
            merged[r.output or f"#{r.index}"] = asdict(r)
        lines = sorted(merged.values(), key=lambda r: (r.get("index", 0), str(r.get("output"))))
        atomic_write(self.path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in lines).encode())


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
                    summary.ok += 1
                elif result.status == "skipped":
                    summary.skipped += 1
                else:
                    summary.failed += 1
                    summary.failures.append({"index": item.index, "source": item.source, "error": result.error})
                self.on_result(result)
        finally:
            manifest.close(results)
            summary.wall_seconds = time.monotonic() - started
        return results, summary

    def _one(self, item: Item, previous: dict[str, dict[str, Any]]) -> Result:
        if item.error:
            return _result(item, "failed", error=item.error)
        if is_done(item, self.out_dir, previous):
            rec = previous[item.output]  # type: ignore[index]
            return _result(item, "skipped", audio=float(rec.get("audio_seconds", 0.0)), size=int(rec["bytes"]))
        assert item.output is not None
        try:
            audio, seconds = self.synthesize(item)
            path = self.out_dir / item.output
            write_audio(path, audio, self.sample_rate)
        except SpeakError as exc:
            return _result(item, "failed", error=str(exc))
        return _result(
            item, "ok", audio=round(len(audio) / self.sample_rate, 3), synth=round(seconds, 3), size=path.stat().st_size
        )


def _result(
    item: Item, status: str, audio: float = 0.0, synth: float = 0.0, size: int = 0, error: str | None = None
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
