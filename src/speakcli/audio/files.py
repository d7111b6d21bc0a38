"""Audio files: the formats by extension, output checks, atomic writing, and reading any rate or channel count."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from speakcli.audio.encode import AUDIO_FORMATS, EXTENSIONS, AudioFormat, available, encode
from speakcli.errors import Hint, OutputError, ReaderGoneError, VoiceError
from speakcli.fsutil import atomic_write, write_error

FORMATS = EXTENSIONS  # output formats by file extension


def output_format(path: str | Path) -> AudioFormat:
    """The format of an output path, chosen by its extension ('-' is WAV); `FormatUnavailableError` when its
    encoder is not installed."""
    if str(path) == "-":
        return AUDIO_FORMATS["wav"]
    ext = Path(path).suffix.lower()
    if ext not in FORMATS:
        raise OutputError(
            f"cannot tell the audio format of {str(path)!r}; end the name with {', '.join(FORMATS)} (or use - for WAV)"
        )
    return available(FORMATS[ext])


def check_output_path(path: str | Path, force: bool = False) -> None:
    """Fail before any synthesis if `path` cannot be written or would overwrite work."""
    output_format(path)
    if str(path) == "-":
        stdout()
        return
    p = Path(path)
    try:
        if p.is_dir():
            raise OutputError(f"{p} is a directory; give a file name such as {p / 'speech.wav'}")
        if p.exists() and not force:
            raise OutputError(f"{p} already exists", hint=Hint.FORCE)
        parent = p.parent if str(p.parent) else Path(".")
        if not parent.is_dir():
            raise OutputError(f"folder {parent} does not exist; create it or choose another output path")
        if not os.access(parent, os.W_OK):
            raise OutputError(f"folder {parent} is not writable; choose another output path")
    except OSError as exc:  # a name too long for the file system (ENAMETOOLONG), a loop of links...
        raise OutputError(f"cannot write {p} ({exc.strerror or exc}); choose another output path") from None


def stdout() -> BinaryIO:
    """The binary stdout that `-o -` writes to; an output error when the process was started with it closed."""
    from speakcli.terminal import terminal

    out = terminal().stdout_binary  # None: file descriptor 1 was closed (`speakcli say hi -o - >&-`)
    if out is None:
        raise OutputError(
            "-o - writes audio to stdout, which is closed; redirect it (-o - > speech.wav) or use -o FILE"
        )
    return out


def write_audio(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono float audio to `path` (or WAV to stdout for '-') atomically: temp file, fsync, rename."""

    data = encode(audio, sample_rate, output_format(path))
    if str(path) == "-":
        out = stdout()
        try:
            out.write(data)
            out.flush()
        except BrokenPipeError:
            raise ReaderGoneError() from None  # the reader left on purpose (`| head`); the CLI ends quietly
        except OSError as exc:
            raise OutputError(f"could not write audio to stdout: {exc.strerror or exc}") from None
        return
    p = Path(path)
    try:
        atomic_write(p, data)
    except OSError as exc:
        raise write_error(f"could not write {p}", exc) from None


def read_audio(path: Path) -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of any file libsndfile reads (WAV, FLAC, OGG...), any channel count, or of
    the AAC and M4A files speakcli writes (through PyAV)."""
    import soundfile as sf

    fmt = FORMATS.get(path.suffix.lower())
    if fmt is not None and fmt.pyav:
        from speakcli.audio.aac import decode

        return decode(path)

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise VoiceError(f"cannot read {path} as audio ({exc}); use a WAV, FLAC or OGG file") from None
    return data.mean(axis=1).astype(np.float32), int(rate)


def audio_frames(path: Path) -> int:
    """How many samples `read_audio` gives for `path`: from the header for WAV and FLAC (exact there), else by
    decoding it."""
    import soundfile as sf

    if path.suffix.lower() in (".wav", ".flac"):
        try:
            return int(sf.info(str(path)).frames)
        except (sf.LibsndfileError, RuntimeError, OSError):
            pass  # read_audio says what is wrong with it
    return len(read_audio(path)[0])
