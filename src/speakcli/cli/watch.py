"""`speakcli watch`: follow a text file (or folder) and speak every new line, in order, for hours."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from speakcli.cli import options as o

if TYPE_CHECKING:  # imported lazily: `speakcli --help` must not load the watch package
    from speakcli.service import SpeechService
    from speakcli.watch import EventLog, WatchDaemon, WatchOptions
    from speakcli.watch.casting import VoiceMap
    from speakcli.watch.speaking import LineSpeaker

EXAMPLES = """
speakcli watch chat.txt                             # speak each new line, like tail -F
speakcli watch logs/ --pattern '*.log' --from-start # every matching file in a folder
speakcli watch chat.txt --no-play -d spoken/        # write each line as a file instead
speakcli watch chat.txt --max-queue 5 --overflow drop-oldest --events -
speakcli watch chat.txt --speaker-pattern '^(?P<speaker>[^:]{1,32}): (?P<text>.*)$' --auto-voices
speakcli watch bot.jsonl --input jsonl --voice-map voices.toml --announce '{speaker} says'
"""


def watch(
    target: Annotated[
        Path,
        typer.Argument(help="File to follow (may not exist yet), or a folder of *.txt files.", metavar="TARGET"),
    ],
    from_start: Annotated[bool, typer.Option("--from-start", help="Speak what the file already holds.")] = False,
    voice: o.Voice = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    speed: o.Speed = None,
    pause: o.Pause = None,
    play: Annotated[bool, typer.Option("--play/--no-play", help="Play each line.")] = True,
    output_dir: Annotated[
        Path | None,
        typer.Option(*o.OUTPUT_DIR_DECLS, help="Also write each line as DIR/<seq>-<slug>.<format>.", metavar="DIR"),
    ] = None,
    format_out: Annotated[
        o.AudioFormat, typer.Option("--format-out", help="Audio format of --output-dir files.")
    ] = "wav",
    output_device: o.OutputDevice = None,
    encoding: Annotated[
        str, typer.Option("--encoding", help="Text encoding (UTF-8 or a single-byte one).", metavar="NAME")
    ] = "utf-8",
    pattern: Annotated[str, typer.Option("--pattern", help="Files to follow in a folder.", metavar="GLOB")] = "*.txt",
    flush_partial: Annotated[
        float | None,
        typer.Option(
            "--flush-partial", help="Speak a line lacking its newline after this many quiet seconds.", metavar="SECONDS"
        ),
    ] = None,
    max_chars: Annotated[
        int, typer.Option("--max-chars", help="Longest line spoken as one piece.", min=10, metavar="N")
    ] = 500,
    long_lines: Annotated[
        Literal["split", "truncate"], typer.Option("--long-lines", help="What to do with lines over --max-chars.")
    ] = "split",
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Most lines waiting (0: no limit).", min=0, metavar="N")
    ] = 0,
    overflow: Annotated[
        Literal["block", "drop-oldest", "drop-newest"],
        typer.Option("--overflow", help="What to do with a new line when the queue is full."),
    ] = "block",
    max_age: Annotated[
        float | None,
        typer.Option("--max-age", help="Skip lines that waited longer than this.", metavar="SECONDS"),
    ] = None,
    skip_regex: Annotated[
        str | None, typer.Option("--skip-regex", help="Skip lines matching this regex.", metavar="REGEX")
    ] = None,
    verbatim: o.Verbatim = None,
    actions: o.Actions = None,
    lexicon: o.Lexicon = None,
    ignore_prefix: Annotated[
        list[str] | None,
        typer.Option("--ignore-prefix", help="Skip lines starting with this (repeatable), e.g. '!'.", metavar="PREFIX"),
    ] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="Append JSON events to FILE ('-' = stdout).", metavar="FILE")
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="Where the read offset is kept.", metavar="FILE")
    ] = None,
    no_state: Annotated[bool, typer.Option("--no-state", help="Keep no state: always start fresh.")] = False,
    drain: Annotated[bool, typer.Option("--drain", help="On Ctrl-C/SIGTERM, speak what is queued first.")] = False,
    poll_interval: Annotated[
        float,
        typer.Option("--poll-interval", help="Safety-net poll, in seconds.", min=0.05, metavar="SECONDS"),
    ] = 1.0,
    input_format: Annotated[
        Literal["text", "jsonl"],
        typer.Option("--input", help="Lines are text, or JSON objects (text, voice, language, speed, speaker)."),
    ] = "text",
    speaker_pattern: Annotated[
        str | None,
        typer.Option(
            "--speaker-pattern",
            help="Regex with named groups speaker and text, e.g. '^(?P<speaker>[^:]+): (?P<text>.*)' "
            "(matched in a line's first 2,048 characters; a text group reaching there runs to the line's end).",
            metavar="REGEX",
        ),
    ] = None,
    voice_map: Annotated[
        Path | None,
        typer.Option(
            "--voice-map", help='TOML: default = "voice", and speaker = "voice" under [speakers].', metavar="FILE"
        ),
    ] = None,
    auto_voices: Annotated[
        bool, typer.Option("--auto-voices", help="Give each new speaker a voice of the library, kept across restarts.")
    ] = False,
    announce: Annotated[
        str | None,
        typer.Option(
            "--announce",
            help="Say this before a line when the speaker changes, e.g. '{speaker} says'.",
            metavar="TEMPLATE",
        ),
    ] = None,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> int:
    """Follow TARGET like `tail -F` and speak each new line; Ctrl-C or SIGTERM stops after the current line.

    While it runs, `speakcli watch-control` skips, clears, pauses and resumes it; SIGUSR1 skips the line being spoken.
    """
    from speakcli.cli.common import announce as announce_engine
    from speakcli.cli.scope import open_service
    from speakcli.errors import ExitStatus
    from speakcli.settings import load_settings
    from speakcli.watch import EventLog, FolderSink, WatchOptions, check_encoding, check_target, default_state_file
    from speakcli.watch.casting import VoiceMap, check_announce
    from speakcli.watch.parsing import LineParser
    from speakcli.watch.relexicon import LexiconFile
    from speakcli.watch.speaking import LineSpeaker

    out_format = _check_flags(play, output_dir, format_out, long_lines, overflow, skip_regex)
    LineParser(input_format, speaker_pattern)  # refuses a bad pattern, or one with --input jsonl
    if announce is not None:
        check_announce(announce)
    voices = VoiceMap.load(voice_map) if voice_map is not None else None
    enc = check_encoding(encoding)
    target = target.expanduser()
    # Checked before the model loads, so a bad path fails at once.
    check_target(target)
    if output_dir is not None:
        FolderSink.check(output_dir)
    log = EventLog(events)  # opened before the model loads, so a bad path fails at once
    silent = quiet or events == "-"  # with the events on stdout, nothing else is said
    try:
        settings = load_settings(
            {
                **o.engine_flags(engine, model_dir, device, voices_dir, precision),
                "voice": voice,
                "language": language,
                "speed": speed,
                "pause": pause,
                "output_device": output_device,
                **o.text_flags(verbatim, actions, lexicon),
            }
        )
        speaker = open_service(settings)
        announce_engine(speaker, silent)
        words = LexiconFile(settings.lexicon, speaker, log) if settings.lexicon is not None else None
        lines = LineSpeaker(speaker, stream=play, lexicon=words)
        pool = _check_voices(lines, voice_map, voices, auto_voices)
        options = WatchOptions(
            from_start=from_start,
            encoding=enc,
            pattern=pattern,
            flush_partial=flush_partial,
            max_chars=max_chars,
            long_lines=long_lines,  # type: ignore[arg-type]
            max_queue=max_queue,
            overflow=overflow,  # type: ignore[arg-type]
            max_age=max_age,
            skip_regex=skip_regex,
            ignore_prefixes=tuple(ignore_prefix or ()),
            poll_interval=poll_interval,
            pause=speaker.options().gap,  # between lines as between sentences: at the speed's rate
            drain=drain,
            output_dir=output_dir,
            output_format=out_format,
            state_file=None if no_state else (state_file or default_state_file(target)),
            input_format=input_format,  # type: ignore[arg-type]
            speaker_pattern=speaker_pattern,
            voice_map=voices,
            auto_voices=auto_voices,
            voice_pool=tuple(pool),
            announce=announce,
        )
        daemon = _daemon(speaker, lines, target, options, play, log)
        first_signal = _run(daemon, silent)
    finally:
        log.close()
    if daemon.error is not None:
        raise daemon.error  # reported once, by the CLI's error boundary, with its exit code
    # Ctrl-C is an interruption (130); SIGTERM is how a service manager stops a service cleanly (0).
    return ExitStatus.INTERRUPTED if first_signal == signal.SIGINT else ExitStatus.OK


def _check_flags(
    play: bool, output_dir: Path | None, format_out: str, long_lines: str, overflow: str, skip_regex: str | None
) -> str:
    """Refuse flags that cannot work together, before anything loads; returns the --format-out format's name."""
    import re

    from speakcli.cli.common import format_named
    from speakcli.errors import UsageError

    if long_lines not in ("split", "truncate"):
        raise UsageError(f"--long-lines {long_lines!r}: use split or truncate")
    if overflow not in ("block", "drop-oldest", "drop-newest"):
        raise UsageError(f"--overflow {overflow!r}: use block, drop-oldest or drop-newest")
    out_format = format_named(format_out, "--format-out").name
    if not play and output_dir is None:
        raise UsageError("--no-play needs --output-dir DIR, or nothing would come out")
    if skip_regex is not None:
        try:
            re.compile(skip_regex)
        except re.error as exc:
            raise UsageError(f"--skip-regex {skip_regex!r} is not a valid regex ({exc})") from None
    return out_format


def _check_voices(lines: LineSpeaker, map_file: Path | None, voices: VoiceMap | None, auto: bool) -> list[str]:
    """Refuse, before the first line, a voice map naming a voice the engine lacks; the voices --auto-voices gives."""
    from speakcli.errors import VoiceError

    if voices is None and not auto:
        return []
    lines.service.load()  # an engine knows its built-in speakers once loaded
    if voices is not None:
        lines.check_voices(voices.voices(), f"voice map {map_file}")
    if not auto:
        return []
    pool = lines.library_voices()
    if not pool:
        raise VoiceError(
            f"--auto-voices: no voice in {lines.service.library.user_dir} the {lines.service.spec.name} engine can "
            "speak with; save some with speakcli clone, or use --voice-map"
        )
    return pool


def _daemon(
    speaker: SpeechService, lines: LineSpeaker, target: Path, options: WatchOptions, play: bool, log: EventLog
) -> WatchDaemon:
    """The daemon speaking through `speaker`'s worker, playing on the output device when `play`."""
    from speakcli.audio.playback import StreamPlayer
    from speakcli.watch import WatchDaemon

    speaker.options(stream=play)  # an unknown --language is refused here, at start
    player = StreamPlayer(speaker.sample_rate, speaker.settings.output_device) if play else None
    try:
        return WatchDaemon(target, lines, speaker.sample_rate, options, player, log)
    except BaseException:  # e.g. another daemon holds the state file: the player opened above is ours to close
        if player is not None:
            player.close(drain=False)
        raise


def _run(daemon: WatchDaemon, quiet: bool) -> int | None:
    """Run the daemon until it ends: the first Ctrl-C or SIGTERM stops it, a second exits at once. Returns the
    first signal (None when the daemon ended by itself, on an error)."""
    from speakcli.errors import ExitStatus

    first_signal: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        first_signal.append(signum)
        if len(first_signal) > 1:
            os._exit(ExitStatus.INTERRUPTED)  # a second signal: leave now; the state holds the last whole line
        daemon.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, lambda signum, frame: daemon.control_server.poke())
    try:
        if not quiet:
            what = "folder" if daemon.target.is_dir() else "file"
            print(f"speakcli: watching {what} {daemon.target}; Ctrl-C to stop", file=sys.stderr)
        try:
            daemon.start()
        except BaseException:  # a start that fails half way releases what it took (lock, observer, player)
            daemon.abort()
            daemon.join(5)
            raise
        _wait(daemon, quiet)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return first_signal[0] if first_signal else None


def _wait(daemon: WatchDaemon, quiet: bool) -> None:
    """Wait for the daemon, showing a one-line status on a terminal."""
    from rich.console import Console
    from rich.live import Live

    console = Console(stderr=True)
    if quiet or not console.is_terminal:
        while not daemon.join(timeout=0.2):
            if _give_up_if_stuck(daemon):
                return
        return
    with Live(console=console, refresh_per_second=4, transient=True) as live:
        while not daemon.join(timeout=0.25):
            if _give_up_if_stuck(daemon):
                return
            s = daemon.stats
            live.update(
                f"[bold]watching[/bold] {daemon.target}  queued {len(daemon.queue)}  spoken {s.spoken}  "
                f"skipped {s.skipped}  dropped {daemon.queue.dropped}  {time.strftime('%H:%M:%S')}"
            )


def _give_up_if_stuck(daemon: WatchDaemon) -> bool:
    """After a stop, and the output cut, a thread still stuck in the system (a hung disk) is left behind."""
    if not daemon.stuck():
        return False
    print("speakcli: warning: a watch thread is stuck (a hung disk or device?); exiting without it", file=sys.stderr)
    daemon.give_up()
    return True
