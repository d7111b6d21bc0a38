"""`speakcli voices`: what voices were found, where, and whether their latents are cached for this model."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from speakcli.cli import options as o


def gather(speaker: Any) -> list[dict[str, Any]]:
    import soundfile as sf

    from speakcli.errors import SpeakError

    rows = []
    cloning = speaker.engine.name == "xtts"
    for entry in speaker.library.all():
        row: dict[str, Any] = {"name": entry.name, "source": str(entry.source), "error": entry.error}
        if entry.voice is not None:
            voice = entry.voice
            seconds = 0.0
            for clip in voice.clips:
                try:
                    seconds += sf.info(str(clip)).duration
                except Exception as exc:  # an unreadable clip: say so rather than fail the listing
                    row["error"] = f"cannot read {clip.name}: {exc}"
            row.update(
                clips=[c.name for c in voice.clips],
                seconds=round(seconds, 2),
                language=voice.language,
                description=voice.meta.get("description"),
            )
            try:
                row["cached"] = speaker.engine.latents_cached(voice) if cloning else None
            except SpeakError as exc:
                row["cached"], row["error"] = False, str(exc)
        rows.append(row)
    return rows


def voices(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List voices: where each was found, its clips and length, and whether its latents are cached."""
    from rich.console import Console
    from rich.table import Table

    from speakcli.settings import load_settings
    from speakcli.speech import Speaker

    speaker = Speaker.from_settings(load_settings(o.engine_flags(engine, model_dir, device, voices_dir)))
    rows = gather(speaker)
    if as_json:
        print(
            json.dumps(
                {"engine": speaker.engine.name, "dirs": [str(d) for d in speaker.library.dirs()], "voices": rows},
                indent=2,
            )
        )
        return
    console = Console()
    table = Table(title=f"voices ({speaker.spec.note})")
    for col in ("name", "clips", "seconds", "language", "latents", "source"):
        table.add_column(col)
    for r in rows:
        if r.get("error"):
            table.add_row(r["name"], "-", "-", "-", f"[red]{r['error']}[/red]", r["source"])
            continue
        cached = {True: "cached", False: "not cached", None: "n/a (no XTTS model)"}[r["cached"]]
        table.add_row(r["name"], str(len(r["clips"])), f"{r['seconds']:.1f}", r["language"] or "-", cached, r["source"])
    console.print(table)
    if not rows:
        console.print(f"no voices found in {', '.join(str(d) for d in speaker.library.dirs())}")
