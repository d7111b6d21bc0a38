"""`speakcli say`: speak one text, from an argument or stdin, to the speakers or a file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli say "Good morning."                       # play with the default voice
echo "From a pipe." | speakcli say                 # text from stdin (or: speakcli say -)
speakcli say "Guten Morgen." -l de -o morning.flac # write a file instead of playing
speakcli say "Cloned." --voice me.wav -o me.ogg    # clone from a reference clip (XTTS)
speakcli say "To a pipe." -o - | aplay             # WAV on stdout
"""


def read_text(text: str | None) -> str:
    from speakcli.errors import EmptyTextError, UsageError

    if text is None or text == "-":
        if text is None and sys.stdin.isatty():
            raise UsageError("no text given; pass TEXT, or pipe text on stdin (e.g. echo hi | speakcli say)")
        text = sys.stdin.read()
        if not text.strip():
            raise EmptyTextError("stdin")
    elif not text.strip():
        raise EmptyTextError("TEXT")
    return text


def say(
    text: Annotated[
        str | None, typer.Argument(help="Text to speak; '-' or none reads stdin.", metavar="TEXT", show_default=False)
    ] = None,
    voice: o.Voice = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    speed: o.Speed = None,
    temperature: o.Temperature = None,
    pause: o.Pause = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write audio here (.wav, .flac, .ogg; '-' = WAV to stdout).",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    play: Annotated[
        bool | None,
        typer.Option("--play/--no-play", help="Play the audio (default: when no --out).", show_default=False),
    ] = None,
    output_device: o.OutputDevice = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite --out if it exists.")] = False,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Speak TEXT (or stdin) with the default or a chosen voice: play it, or write it with -o."""
    from speakcli.cli.common import announce, check_outputs, emit
    from speakcli.cli.scope import open_service
    from speakcli.settings import load_settings

    settings = load_settings(
        {
            **o.engine_flags(engine, model_dir, device, voices_dir, precision),
            "voice": voice,
            "language": language,
            "speed": speed,
            "temperature": temperature,
            "pause": pause,
            "output_device": output_device,
        }
    )
    play = check_outputs(out, play, force)
    text = read_text(text)
    service = open_service(settings)
    announce(service, quiet)
    opts = service.options(stream=play)  # streaming only pays off when someone is listening
    emit(service, service.speak(text, service.voice(), opts), out, play, quiet)
