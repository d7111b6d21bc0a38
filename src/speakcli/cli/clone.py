"""`speakcli clone`: make a voice from reference clips, cache its latents, and optionally speak with it."""

from __future__ import annotations

import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer

from speakcli.cli import options as o


def clone(
    references: Annotated[
        list[Path], typer.Argument(help="Reference clips (WAV, FLAC, OGG, MP3...; any rate).", show_default=False)
    ],
    name: Annotated[str | None, typer.Option("--name", "-n", help="Save as this voice in your voices dir.")] = None,
    text: Annotated[str | None, typer.Option("--text", "-t", help="Also speak this text ('-' reads stdin).")] = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write the spoken --text here.", show_default=False)
    ] = None,
    play: Annotated[
        bool | None, typer.Option("--play/--no-play", help="Play the spoken --text.", show_default=False)
    ] = None,
    output_device: o.OutputDevice = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing voice or --out file.")] = False,
    quiet: o.Quiet = False,
) -> None:
    """Clone a voice from reference clips: save it with --name, speak --text with it, or both."""
    from speakcli.cli.common import announce, check_outputs, emit
    from speakcli.cli.say import read_text
    from speakcli.engines.base import Voice
    from speakcli.errors import OutputError, UsageError
    from speakcli.refaudio import check_references
    from speakcli.settings import load_settings
    from speakcli.speech import Speaker
    from speakcli.voices import validate_name

    if name is None and text is None:
        raise UsageError("nothing to do; pass --name NAME to save the voice, --text TEXT to speak, or both")
    settings = load_settings(
        {**o.engine_flags(engine, model_dir, device, voices_dir), "language": language, "output_device": output_device}
    )
    if name is not None:
        validate_name(name)
        target = settings.voices_dir / name
        if target.exists() and not force:
            raise OutputError(f"voice {name!r} already exists in {settings.voices_dir}; pass --force to replace it")
    play_it = check_outputs(out, play, force) if text is not None else False
    spoken = read_text(text) if text is not None else None
    speaker = Speaker.from_settings(settings)
    announce(speaker, quiet)
    speaker.require_cloning()
    max_seconds = speaker.max_reference_seconds()
    report = check_references([p.expanduser() for p in references], max_seconds)
    for warning in report.warnings:
        print(f"speakcli: warning: {warning}", file=sys.stderr)
    opts = speaker.options(stream=play_it) if spoken is not None else None
    if name is not None:
        meta = {
            "language": settings.language,
            "description": f"cloned from {', '.join(p.name for p in references)}",
            "source": "speakcli clone",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        # Built in a hidden folder and moved into place only once its latents are made: a clone that fails
        # (or is interrupted) leaves no half-made voice behind.
        staged = speaker.library.stage(name, [c.path for c in report.clips], meta, force, max_seconds)
        try:
            status = speaker.worker.call(lambda e: e.ensure_latents(staged.voice))  # type: ignore[attr-defined]
            voice = staged.commit()
        finally:
            staged.discard()
    else:
        voice = Voice(name="reference", clips=tuple(c.path.resolve() for c in report.clips))
        status = speaker.worker.call(lambda e: e.ensure_latents(voice))  # type: ignore[attr-defined]
    if not quiet:
        where = f"voice {name!r} in {speaker.library.user_dir}" if name else "the reference clips"
        print(
            f"speakcli: {status} latents for {where} ({report.total_seconds:.1f} s of reference audio)", file=sys.stderr
        )
    if spoken is not None and opts is not None:
        emit(speaker, speaker.speak(spoken, voice, opts), out, play_it, quiet)
