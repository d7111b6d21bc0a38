"""`speakcli clone`: make a voice from reference clips, cache its latents, and optionally speak with it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli clone me.wav --name me                        # save a voice, cache its latents (XTTS)
speakcli clone a.wav b.flac --name me --force          # several clips; replace the old voice
speakcli clone me.wav --text "Hi, it's me." -o hi.wav  # clone and speak in one step
speakcli say "Hello." --voice me                       # then speak with the saved voice
"""


def clone(
    references: Annotated[
        list[Path],
        typer.Argument(help="Reference clips (WAV, FLAC, OGG, MP3...; any rate).", metavar="CLIP", show_default=False),
    ],
    name: Annotated[
        str | None, typer.Option("--name", "-n", help="Save as this voice in your voices dir.", metavar="NAME")
    ] = None,
    text: Annotated[
        str | None, typer.Option("--text", "-t", help="Also speak this text ('-' reads stdin).", metavar="TEXT")
    ] = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the spoken --text here.", metavar="FILE", show_default=False),
    ] = None,
    play: Annotated[
        bool | None, typer.Option("--play/--no-play", help="Play the spoken --text.", show_default=False)
    ] = None,
    output_device: o.OutputDevice = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Replace an existing voice or --out file.")] = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Clone a voice from reference clips: save it with --name, speak --text with it, or both."""
    from speakcli.cli.common import announce, check_outputs, emit
    from speakcli.cli.say import read_text
    from speakcli.cli.scope import open_service
    from speakcli.errors import UsageError
    from speakcli.settings import load_settings
    from speakcli.voices import VoiceLibrary

    if name is None and text is None:
        raise UsageError("nothing to do; pass --name NAME to save the voice, --text TEXT to speak, or both")
    settings = load_settings(
        {
            **o.engine_flags(engine, model_dir, device, voices_dir, precision),
            "language": language,
            "output_device": output_device,
        }
    )
    if name is not None:
        VoiceLibrary(settings.voices_dir).check_new(name, force)  # before the model loads
    play_it = check_outputs(out, play, force) if text is not None else False
    spoken = read_text(text) if text is not None else None
    service = open_service(settings)
    announce(service, quiet)
    service.cloner  # noqa: B018 - "this engine cannot clone" comes before any question about --text's language
    opts = service.options(stream=play_it) if spoken is not None else None
    result = service.clone(
        [p.expanduser() for p in references],
        name,
        force=force,
        on_warning=lambda w: print(f"speakcli: warning: {w}", file=sys.stderr),
    )
    if not quiet:
        where = f"voice {name!r} in {result.saved_in}" if name else "the reference clips"
        print(
            f"speakcli: {result.latents} latents for {where} ({result.reference_seconds:.1f} s of reference audio)",
            file=sys.stderr,
        )
    if spoken is not None and opts is not None:
        emit(service, service.speak(spoken, result.voice, opts), out, play_it, quiet)
