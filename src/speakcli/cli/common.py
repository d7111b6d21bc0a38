"""Helpers shared by commands that produce audio: check outputs up front, then play, stream and/or write."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import numpy as np

from speakcli.audio import check_output_path, output_format, write_audio
from speakcli.audio.encode import AUDIO_FORMATS, AudioFormat, StreamEncoder, audio_format
from speakcli.audio.files import stdout as binary_stdout
from speakcli.cli.progress import SpeakProgress
from speakcli.engines import xtts_installed
from speakcli.errors import OutputError, ReaderGoneError, UsageError
from speakcli.terminal import terminal

if TYPE_CHECKING:
    from speakcli.remote import RemoteSource
    from speakcli.service import SpeechService  # only named: a warm start through a server never loads it
    from speakcli.worker import Job

FORMAT_ALIASES = {"raw": "pcm"}  # `--format raw`: 16-bit little-endian PCM, as aplay -f S16_LE and sox -t raw read


def format_named(name: str, option: str = "--format") -> AudioFormat:
    """The audio format a `--format`-like option names (wav, flac, ogg, opus, mp3, pcm or raw), or a usage error."""
    key = name.lower()
    if FORMAT_ALIASES.get(key, key) not in AUDIO_FORMATS:
        raise UsageError(f"{option} {name!r}: use one of {', '.join([*AUDIO_FORMATS, *FORMAT_ALIASES])}")
    return audio_format(FORMAT_ALIASES.get(key, key))


def check_outputs(out: Path | None, play: bool | None, force: bool, fmt: str | None = None) -> bool:
    """Validate -o/--play/--format before any model work; returns whether to play."""
    if fmt is not None:
        chosen = format_named(fmt)
        if out is None:
            raise UsageError("--format sets the encoding of -o; pass -o FILE or -o - as well")
        if str(out) != "-" and Path(out).suffix.lower() not in chosen.extensions:
            name = Path(out).with_suffix(chosen.extensions[0]).name
            raise UsageError(f"--format {fmt} does not match the name {out}; drop --format, or name the file {name}")
    if out is not None:
        check_output_path(out, force)
    if play is None:
        play = out is None
    if not play and out is None:
        raise UsageError("--no-play without --out does nothing; pass -o FILE")
    if out is not None and str(out) == "-":
        if play:
            raise UsageError("-o - writes audio to stdout; add --no-play, or write to a file")
        if terminal().stdout_isatty:
            raise UsageError(
                "-o - would write binary audio to the terminal; redirect it (-o - > speech.wav, or | aplay) "
                "or write a file with -o FILE"
            )
    return play


class _Stdout:
    """Audio encoded chunk by chunk onto stdout, so a reader hears the first sentence while the rest is made."""

    def __init__(self, fmt: AudioFormat, rate: int) -> None:
        self.encoder = StreamEncoder(fmt, rate)
        self.file: BinaryIO = binary_stdout()

    def _send(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.file.write(data)
            self.file.flush()
        except BrokenPipeError:
            raise ReaderGoneError() from None  # the reader left on purpose (`| head`); the CLI ends quietly
        except OSError as exc:
            raise OutputError(f"could not write audio to stdout: {exc.strerror or exc}") from None

    def feed(self, chunk: np.ndarray) -> None:
        self._send(self.encoder.feed(chunk))

    def finish(self) -> None:
        self._send(self.encoder.finish())


class AudioStream(Protocol):
    """Audio chunks as they are made, that can be stopped: a worker's job, or a warm server's response."""

    def __iter__(self) -> Iterator[np.ndarray]: ...

    def cancel(self) -> None: ...


def emit(
    service: SpeechService | RemoteSource,
    job: Job[np.ndarray] | AudioStream,
    out: Path | None,
    play: bool,
    quiet: bool,
    fmt: str | None = None,
    progress: SpeakProgress | None = None,
) -> float:
    """Play the job's audio and/or stream it to stdout as it arrives, or collect it for -o FILE; returns seconds."""
    from speakcli.audio.playback import Player

    rate = service.sample_rate
    stdout = out is not None and str(out) == "-"
    player = Player(rate, service.settings.output_device) if play else None
    stream = _Stdout(format_named(fmt) if fmt else output_format("-"), rate) if stdout else None
    collected: list[np.ndarray] = []
    made = 0
    try:
        for chunk in job:
            made += len(chunk)
            if progress is not None:
                progress.audio(len(chunk) / rate)
            if player is not None:
                player.write(chunk)
            if stream is not None:
                stream.feed(chunk)
            elif out is not None:
                collected.append(chunk)
        if stream is not None:
            stream.finish()
        if progress is not None:
            progress.stop()  # before anything else is printed
    except BaseException:
        job.cancel()
        if player is not None:
            player.abort()
        raise
    if player is not None:
        player.close()
    seconds = made / rate
    if out is not None and not stdout:
        audio = np.concatenate(collected) if collected else np.zeros(0, np.float32)
        write_audio(out, audio, rate)
        if not quiet:
            print(f"speakcli: wrote {out} ({seconds:.1f} s, {rate} Hz)", file=terminal().stderr)
    return seconds


def announce(service: SpeechService, quiet: bool) -> None:
    """Say which engine `--engine auto` picked, in one short line; nothing on the usual path.

    The usual path is the bundled voice because no XTTS model is here: that is worth one line on a terminal when
    XTTS is installed (someone meant to use it), and none when it is not installed or stderr is a pipe or log.
    """
    if quiet or service.settings.engine != "auto":
        return
    term = terminal()
    if not service.spec.fallback:
        print(f"speakcli: using {service.spec.note}", file=term.stderr)
    elif term.stderr_isatty and xtts_installed():
        print("speakcli: no XTTS model found; using the bundled Piper voice", file=term.stderr)
