"""`speakcli say`: speak one text, from an argument or stdin, to the speakers or a file."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from speakcli.cli import options as o

if TYPE_CHECKING:
    from speakcli.settings import Settings

EXAMPLES = """
speakcli say "Good morning."                       # play with the default voice
echo "From a pipe." | speakcli say                 # text from stdin (or: speakcli say -)
speakcli say "Guten Morgen." -l de -o morning.flac # write a file instead of playing
speakcli say "Cloned." --voice me.wav -o me.ogg    # clone from a reference clip (XTTS)
speakcli say "To a pipe." -o - | aplay             # WAV on stdout
"""


def read_text(text: str | None) -> str:
    from speakcli.errors import EmptyTextError, UsageError
    from speakcli.terminal import terminal

    term = terminal()
    if text is None or text == "-":
        if text is None and term.stdin_isatty:
            raise UsageError("no text given; pass TEXT, or pipe text on stdin (e.g. echo hi | speakcli say)")
        text = term.stdin.read() if term.stdin is not None else ""
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
    seed: o.Seed = None,
    verbatim: o.Verbatim = None,
    actions: o.Actions = None,
    lexicon: o.Lexicon = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write audio here (.wav, .flac, .ogg, .opus, .mp3, .aac, .m4a, .pcm); '-' streams WAV to stdout.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        o.AudioFormat | None,
        typer.Option("--format", help="Encoding of -o (raw: 16-bit PCM); stdout's default is WAV.", show_default=False),
    ] = None,
    ssml: Annotated[bool, typer.Option("--ssml", help="Read TEXT as SSML (automatic for a <speak> document).")] = False,
    play: Annotated[
        bool | None,
        typer.Option("--play/--no-play", help="Play the audio (default: when no --out).", show_default=False),
    ] = None,
    output_device: o.OutputDevice = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite --out if it exists.")] = False,
    server: Annotated[
        bool,
        typer.Option(
            "--server/--no-server",
            help="Speak through a `speakcli serve` running here with the same model, if any (its model is loaded).",
        ),
    ] = True,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Speak TEXT (or stdin) with the default or a chosen voice: play it, or write it with -o."""
    from speakcli.cli.common import announce, check_outputs, emit
    from speakcli.cli.progress import SpeakProgress
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
            "seed": seed,
            "output_device": output_device,
            **o.text_flags(verbatim, actions, lexicon),
        }
    )
    play = check_outputs(out, play, force, fmt)
    text = read_text(text)
    if server and _through_server(settings, text, ssml, out, play, quiet, fmt):
        return
    service = open_service(settings)
    announce(service, quiet)
    # Streaming only pays off when someone is listening, or reading stdout as it comes.
    opts = service.options(stream=play or str(out) == "-")
    voice_used = service.voice()
    progress = SpeakProgress(service.engine.name, quiet)
    job = service.speak(text, voice_used, opts, ssml=ssml or None, on_progress=progress.sentence)  # may warn: first
    with progress:
        emit(service, job, out, play, quiet, fmt, progress)


def _through_server(
    settings: Settings, text: str, ssml: bool, out: Path | None, play: bool, quiet: bool, fmt: str | None
) -> bool:
    """Speak through a running server that speaks as this run would; False when there is none, or it could not."""
    from speakcli.cli.common import emit
    from speakcli.warm import RemoteSource, Unavailable, warm_speech

    # -o FILE is written only once whole, so a cut stream is never written: the run starts over here.
    remote = warm_speech(settings, text, ssml=ssml or None, buffered=not play and str(out) != "-")
    if remote is None:
        return False
    from speakcli.terminal import terminal

    if not quiet and terminal().stderr_isatty:
        print(f"speakcli: speaking through the server at {remote.url}", file=terminal().stderr)
    try:
        emit(RemoteSource(remote.sample_rate, settings), remote, out, play, quiet, fmt)
    except Unavailable:
        return False  # cut before any of its audio went out: speak here instead
    return True
