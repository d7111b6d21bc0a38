"""Shell completion of voice names and languages: read from the voice library and model config, never a model."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:  # imported lazily: completion runs on every Tab press and must stay light
    from speakcli.settings import Settings


def _settings(ctx: typer.Context) -> Settings:
    """The settings the command line typed so far asks for; a broken config or env var does not stop completion."""
    from speakcli.settings import resolve_settings

    typed = ctx.params
    flags = {k: typed.get(k) for k in ("engine", "model_dir", "device", "voices_dir")}
    try:
        return resolve_settings(flags)[0]
    except Exception:  # a bad flag typed so far: complete with what the env and config say
        return resolve_settings({})[0]


def complete_voice(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """Saved voices (yours, then the bundled ones), with where each is from."""
    from speakcli.voices import VoiceLibrary

    try:
        entries = VoiceLibrary(_settings(ctx).voices_dir).all()
    except Exception:  # completion must never print a traceback into the user's prompt
        return []
    return [(e.name, f"voice in {e.source}") for e in entries if e.voice is not None and e.name.startswith(incomplete)]


def complete_language(ctx: typer.Context, incomplete: str) -> list[tuple[str, str]]:
    """The languages the engine these settings pick speaks (read from its config, without loading it)."""
    from speakcli.report import languages

    try:
        found: dict[str, Any] = languages(_settings(ctx))
    except Exception:
        return []
    return [(lang["code"], lang["name"]) for lang in found["languages"] if lang["code"].startswith(incomplete)]
