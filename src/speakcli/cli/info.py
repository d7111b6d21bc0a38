"""`speakcli info`: versions, the engine and model that would be used (or why not), dirs, audio outputs."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from speakcli.cli import options as o


def info(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show versions, which engine and model would be used (or why not), directories and audio outputs."""
    from rich.console import Console
    from rich.table import Table

    from speakcli.service import describe
    from speakcli.settings import load_settings

    report = describe(load_settings(o.engine_flags(engine, model_dir, device, voices_dir, precision)))
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("python", report["python"])
    for name, version in report["packages"].items():
        table.add_row(name, version or "not installed")
    eng = report["engine"]
    table.add_row("engine", eng.get("note") or eng.get("error", ""))
    table.add_row("xtts model", report["xtts_model"]["path"] or report["xtts_model"]["note"])
    dev = report["device"]
    table.add_row(
        "device",
        f"{dev['requested']} (cuda: {dev.get('cuda')}{', ' + ', '.join(dev.get('gpus', [])) if dev.get('gpus') else ''})",
    )
    table.add_row("precision", f"{report['precision']} (XTTS GPT)")
    table.add_row("config file", report["config_file"])
    table.add_row("voices dirs", ", ".join(report["voices_dirs"]))
    table.add_row("cache dir", report["cache_dir"])
    outs = report["audio_outputs"]
    table.add_row(
        "audio outputs",
        "; ".join(f"{d['index']}: {d['name']}{' (default)' if d['default'] else ''}" for d in outs)
        or report.get("audio_error", "none found"),
    )
    Console().print(table)
