"""Batch planning: each item's settings, its safe and stable output name, and the key of what decides its audio."""

from __future__ import annotations

import hashlib
import json
import os
import re
import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from speakcli.audio import FORMATS
from speakcli.batch.items import Item
from speakcli.batch.manifest import MANIFEST
from speakcli.errors import Hint, OutputError, UsageError
from speakcli.fsutil import NAME_MAX, name_bytes
from speakcli.settings import Settings

# No {index} by default: a name must not change when a line is inserted above it (resume goes by name and content).
DEFAULT_TEMPLATE = "{slug}-{hash}"

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
        shortest = template.format(index=1, slug="x", source="x", hash="x")
    except (KeyError, IndexError, ValueError, TypeError) as exc:
        raise UsageError(f"name template {template!r} is invalid ({exc})", hint=Hint.NAME_TEMPLATE) from None
    _check_length(shortest)


def _check_length(name: str) -> None:
    """A name the template makes must fit the file system, or every item would fail when written."""
    if name_bytes(name) > NAME_MAX:
        raise OutputError(
            f"the name template makes a file name of {name_bytes(name)} bytes, and a file name holds at most {NAME_MAX}",
            hint=Hint.NAME_TEMPLATE,
        )


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
        if name_bytes(name) > NAME_MAX:
            item.error = f"output name {name!r} is longer than the {NAME_MAX} bytes a file name holds"
        elif (out_dir / name).resolve().parent != out_dir.resolve():  # belt and braces: safe_name kept it plain
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
        _check_length(name)
        used[name] = item.index
        item.output = name
    for item in todo:
        if item.output is not None:
            blob = json.dumps([item.text, item.voice, item.language, item.speed, engine_id, ext, settings_of(item)])
            item.key = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def resolve_settings(item: Item, settings: Settings) -> Settings | None:
    """The run's settings with the item's own voice, language and speed; None (and `item.error`) when invalid.

    Plain data: an executor can ship it to another process with the item.
    """
    try:
        return replace(
            settings,
            voice=item.voice if item.voice is not None else settings.voice,
            language=item.language if item.language is not None else settings.language,
            speed=item.speed if item.speed is not None else settings.speed,
        ).validate()
    except UsageError as exc:
        item.error = str(exc)
        return None
