"""`speakcli precompute`: compute and cache the speaker latents of every voice (or the named ones)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Annotated

import typer

from speakcli.cli import options as o
from speakcli.cli.completion import complete_voice

EXAMPLES = """
speakcli precompute                      # every voice without fresh cached latents
speakcli precompute me joe --force       # these voices, computed again
"""


def precompute(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            help="Voices to compute (default: all).", metavar="VOICE", show_default=False, autocompletion=complete_voice
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Recompute even when cached.")] = False,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> int:
    """Compute the latents of every voice that has no fresh cache entry, so later runs skip it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from speakcli.cli.common import announce
    from speakcli.cli.scope import open_service
    from speakcli.errors import ExitStatus
    from speakcli.settings import load_settings

    service = open_service(load_settings(o.engine_flags(engine, model_dir, device, voices_dir)))
    announce(service, quiet or as_json)
    service.cloner  # noqa: B018 - fails now, before the progress bar, when this engine cannot clone
    err = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=quiet or as_json or not err.is_terminal,
    ) as progress:
        task = progress.add_task("latents", total=None)

        def on_voice(name: str, done: int, total: int) -> None:
            progress.update(task, description=f"latents: {name}", completed=done, total=total)

        results = service.precompute(names, force, on_voice)
    failed = sum(r.status == "failed" for r in results)
    if as_json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    elif not quiet:
        table = Table(title="precompute")
        for col in ("voice", "status", "detail"):
            table.add_column(col)
        for r in results:
            table.add_row(r.voice, r.status if r.status != "cached" else "skipped (cached)", r.detail)
        Console().print(table)
    if failed:
        print(f"speakcli: error: {failed} of {len(results)} voice(s) failed", file=sys.stderr)
        return int(ExitStatus.PARTIAL)
    return 0
