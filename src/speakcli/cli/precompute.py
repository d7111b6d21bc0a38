"""`speakcli precompute`: compute and cache the speaker latents of every voice (or the named ones)."""

from __future__ import annotations

import json
import sys
from functools import partial
from typing import Annotated, Any

import typer

from speakcli.cli import options as o


def _ensure(engine: Any, voice: Any, force: bool) -> str:
    """Runs on the synthesis worker: compute and cache one voice's latents unless fresh."""
    return str(engine.ensure_latents(voice, force=force))


def precompute(
    names: Annotated[
        list[str] | None, typer.Argument(help="Voices to compute (default: all).", show_default=False)
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Recompute even when cached.")] = False,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    quiet: o.Quiet = False,
) -> int:
    """Compute the latents of every voice that has no fresh cache entry, so later runs skip it."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from speakcli.cli.common import announce
    from speakcli.errors import ExitStatus, SpeakError, VoiceError
    from speakcli.settings import load_settings
    from speakcli.speech import Speaker

    speaker = Speaker.from_settings(load_settings(o.engine_flags(engine, model_dir, device, voices_dir)))
    announce(speaker, quiet or as_json)
    speaker.require_cloning()
    entries = {e.name: e for e in speaker.library.all()}
    if names:
        missing = [n for n in names if n not in entries]
        if missing:
            raise VoiceError(f"no voice named {', '.join(missing)}; see `speakcli voices`")
        chosen = [entries[n] for n in names]
    else:
        chosen = list(entries.values())
    results: list[dict[str, str]] = []
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
        task = progress.add_task("latents", total=len(chosen))
        for entry in chosen:
            progress.update(task, description=f"latents: {entry.name}")
            if entry.voice is None:
                results.append({"voice": entry.name, "status": "failed", "detail": entry.error or "unusable"})
            else:
                voice = entry.voice
                try:
                    status = speaker.worker.call(partial(_ensure, voice=voice, force=force))
                    results.append({"voice": entry.name, "status": status, "detail": ""})
                except SpeakError as exc:
                    results.append({"voice": entry.name, "status": "failed", "detail": str(exc)})
            progress.advance(task)
    failed = sum(r["status"] == "failed" for r in results)
    if as_json:
        print(json.dumps(results, indent=2))
    elif not quiet:
        table = Table(title="precompute")
        for col in ("voice", "status", "detail"):
            table.add_column(col)
        for r in results:
            table.add_row(r["voice"], r["status"] if r["status"] != "cached" else "skipped (cached)", r["detail"])
        Console().print(table)
    if failed:
        print(f"speakcli: error: {failed} of {len(results)} voice(s) failed", file=sys.stderr)
        return int(ExitStatus.PARTIAL)
    return 0
