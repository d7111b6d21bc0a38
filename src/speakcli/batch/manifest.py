"""The batch manifest: one JSON line per item, what resume compares, rewritten compact and in order at the end."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speakcli import jsontext
from speakcli.batch.items import Item
from speakcli.fsutil import atomic_write

MANIFEST = "manifest.jsonl"


@dataclass
class Result:
    """What became of one item: a manifest line."""

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
    chapter: int | None = None  # the item's chapter (number, title), when its input has chapters
    chapter_title: str | None = None


def result_for(
    item: Item,
    status: str,
    audio: float = 0.0,
    synth: float = 0.0,
    size: int = 0,
    error: str | None = None,
    reason: str | None = None,
    kept: bool = False,
) -> Result:
    """The record of `item` with this outcome."""
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
        chapter=item.chapter,
        chapter_title=item.chapter_title,
    )


def load_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The last record per output file; a line torn by a kill is ignored."""
    records: dict[str, dict[str, Any]] = {}
    path = out_dir / MANIFEST
    if not path.exists():
        return records
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = jsontext.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("output"):
            records[str(rec["output"])] = rec
    return records


def done_record(item: Item, out_dir: Path, manifest: dict[str, dict[str, Any]]) -> dict[str, Any] | None:
    """The record of a previous run that already made exactly this item (same text, voice, settings; file
    whole), or None."""
    if item.output is None:
        return None
    rec = manifest.get(item.output)
    path = out_dir / item.output
    done = bool(
        rec
        and rec.get("status") in ("ok", "removed")  # removed: its line left the input and came back
        and rec.get("key") == item.key
        and path.is_file()
        and path.stat().st_size == rec.get("bytes")
    )
    return rec if done else None


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
                place = {"index": item.index, "source": item.source, "chapter": item.chapter}
                records.append({**rec, **place, "chapter_title": item.chapter_title, "status": status})
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
