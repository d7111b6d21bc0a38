"""`speakcli voices`: what voices were found, where, and whether their latents are cached for this model."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli voices                          # voices found, clip lengths, latents cached or not
speakcli voices --voices-dir ~/voices    # another voice library
speakcli voices --json | jq -r '.voices[].name'
"""


def voices(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: o.Debug = False,
) -> None:
    """List voices: where each was found, its clips and length, and whether its latents are cached."""
    from rich.console import Console
    from rich.table import Table

    from speakcli.cli.scope import open_service
    from speakcli.settings import load_settings

    service = open_service(load_settings(o.engine_flags(engine, model_dir, device, voices_dir)))
    rows = service.voices()
    dirs = [str(d) for d in service.library.dirs()]
    if as_json:
        print(json.dumps({"engine": service.engine.name, "dirs": dirs, "voices": [asdict(r) for r in rows]}, indent=2))
        return
    console = Console()
    table = Table(title=f"voices ({service.spec.note})")
    for col in ("name", "clips", "seconds", "language", "latents", "source"):
        table.add_column(col)
    for r in rows:
        if r.error:
            table.add_row(r.name, "-", "-", "-", f"[red]{r.error}[/red]", r.source)
            continue
        cached = {True: "cached", False: "not cached", None: "n/a (no XTTS model)"}[r.cached]
        table.add_row(r.name, str(len(r.clips)), f"{r.seconds:.1f}", r.language or "-", cached, r.source)
    console.print(table)
    if not rows:
        console.print(f"no voices found in {', '.join(dirs)}")
