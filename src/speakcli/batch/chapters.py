"""Chapter marks of a joined batch: where each chapter starts in it, as a table and as a side file for players."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from speakcli.batch.items import Item
from speakcli.batch.manifest import Result
from speakcli.errors import Hint, OutputError, UsageError


@dataclass(frozen=True)
class Mark:
    """One chapter in the joined file: its title, start and end (seconds), and its first and last item there."""

    chapter: int
    title: str
    start: float
    end: float
    first_item: int
    last_item: int


def chapter_marks(made: Sequence[Result], starts: Sequence[float], length: float) -> list[Mark]:
    """The chapters of a file joined from `made` (in order; `starts[i]` is where item i starts in it): each starts
    at its first item there. A chapter none of whose items was made has no mark; items in no chapter make none."""
    firsts: list[tuple[Result, float, int]] = []  # (first item, its start, last item's index)
    for result, start in zip(made, starts, strict=True):
        if result.chapter is None:
            continue
        if firsts and firsts[-1][0].chapter == result.chapter:
            firsts[-1] = (firsts[-1][0], firsts[-1][1], result.index)
        else:
            firsts.append((result, start, result.index))
    ends = [start for _, start, _ in firsts[1:]] + [length] * bool(firsts)
    return [
        Mark(int(first.chapter or 0), first.chapter_title or "", round(start, 3), round(end, 3), first.index, last)
        for (first, start, last), end in zip(firsts, ends, strict=True)
    ]


def chapter_table(items: Sequence[Item], marks: Sequence[Mark] = ()) -> list[dict[str, Any]]:
    """Each chapter of the input, in order: number, title, first and last item, and its start in the joined file
    (None when there is none, or none of its items was made)."""
    starts = {m.chapter: m.start for m in marks}
    table: dict[int, dict[str, Any]] = {}
    for item in items:
        if item.chapter is None:
            continue
        row = table.setdefault(
            item.chapter,
            {
                "chapter": item.chapter,
                "title": item.chapter_title,
                "first_item": item.index,
                "last_item": item.index,
                "start": starts.get(item.chapter),
            },
        )
        row["last_item"] = item.index
    return list(table.values())


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def chapters_file(marks: Sequence[Mark], path: Path) -> bytes:
    """The side file's bytes: for a .json name a JSON list of the marks (times in seconds), else the text form
    players and mp4chaps read, one `HH:MM:SS.mmm Title` line per chapter."""
    if path.suffix.lower() == ".json":
        return (json.dumps([asdict(m) for m in marks], ensure_ascii=False, indent=2) + "\n").encode()
    return "".join(f"{_clock(m.start)} {' '.join(m.title.split())}\n" for m in marks).encode()


def check_chapters_out(path: Path | None, concat: Path | None, force: bool) -> None:
    """Refuse now a chapters side file that cannot be written, or without --concat (its times are in that file)."""
    if path is None:
        return
    if concat is None:
        raise UsageError("--chapters-out gives times in the joined file; add --concat FILE")
    try:
        if path.is_dir():
            raise OutputError(f"{path} is a directory; give a file name such as {path / 'chapters.txt'}")
        if path.exists() and not force:
            raise OutputError(f"{path} already exists", hint=Hint.FORCE)
        if not path.parent.is_dir():
            raise OutputError(f"folder {path.parent} does not exist; create it or choose another path")
    except OSError as exc:
        raise OutputError(f"cannot write {path} ({exc.strerror or exc}); choose another path") from None
