"""`speakcli info`: versions, the engine and model that would be used (or why not), settings problems, folders."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli info                      # what would be used, and why
speakcli info --json | jq .config  # the config file in use and any problem with it
SPEAKCLI_CONFIG=~/alt.toml speakcli info
"""


def info(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    debug: o.Debug = False,
) -> None:
    """Show versions, the engine and model that would be used (or why not), settings problems and folders.

    Runs even when the config file or a SPEAKCLI_* variable is broken: each problem is listed, and the value
    is taken from the next source (env var, config file, default) as the other commands would once it is fixed.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from speakcli.service import describe
    from speakcli.settings import resolve_settings

    settings, problems = resolve_settings(o.engine_flags(engine, model_dir, device, voices_dir, precision))
    report = describe(settings)
    report["config"]["problems"] = problems
    if as_json:
        print(json.dumps(report, indent=2))
        return
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # whole paths, folded: never cut with "..."
    table.add_row("python", report["python"])
    for name, version in report["packages"].items():
        table.add_row(name, version or "not installed")
    eng = report["engine"]
    table.add_row("engine", escape(eng.get("note") or eng.get("error", "")))
    table.add_row("xtts model", escape(report["xtts_model"]["path"] or report["xtts_model"]["note"]))
    dev = report["device"]
    table.add_row(
        "device",
        f"{dev['requested']} (cuda: {dev.get('cuda')}{', ' + ', '.join(dev.get('gpus', [])) if dev.get('gpus') else ''})",
    )
    table.add_row("precision", f"{report['precision']} (XTTS GPT), {report['decoder_precision']} (XTTS decoder)")
    table.add_row(
        "max batch", f"{report['max_batch']} sentences a step" + ("" if report["max_batch"] > 1 else " (not batched)")
    )
    server = report.get("server")
    if server:
        sched = server.get("scheduler")
        state = (
            f"{sched['active']} jobs in hand ({sched['interactive']} interactive, {sched['background']} background), "
            f"{sched['waiting']} waiting, batch {sched['batch_in_use']} of {sched['max_batch']}"
            if sched
            else server.get("note", "")
        )
        table.add_row("server", f"{server['url']}: {state}")
    config = report["config"]
    state = "" if config["exists"] else " (not found: defaults in use)"
    table.add_row("config file", escape(config["file"] + state))
    for problem in problems:
        table.add_row("[red]config problem[/red]", escape(problem))
    for role, path in report["dirs"].items():
        table.add_row(f"{role} dir", escape(path))
    table.add_row("voices dirs", escape(", ".join(report["voices_dirs"])))
    table.add_row("latent cache", escape(report["cache_dir"]))
    outs = report["audio_outputs"]
    table.add_row(
        "audio outputs",
        escape(
            "; ".join(f"{d['index']}: {d['name']}{' (default)' if d['default'] else ''}" for d in outs)
            or report.get("audio_error", "none found")
        ),
    )
    Console().print(table)
