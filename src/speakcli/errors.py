"""Core errors with actionable messages, and the exit status each maps to."""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Process exit codes; documented in the README."""

    OK = 0
    ERROR = 1  # unexpected failure (a bug): rerun with --debug
    USAGE = 2  # bad arguments, empty text, unknown language
    VOICE = 3  # unknown voice, unreadable or unusable reference audio
    MODEL = 4  # engine not installed, model folder missing or corrupt
    AUDIO_DEVICE = 5  # no audio output (PortAudio missing, no device)
    OUTPUT = 6  # output path unwritable, exists without --force, unknown format
    SYNTHESIS = 7  # the engine failed on this text
    PARTIAL = 8  # a multi-item run finished but some items failed
    INTERRUPTED = 130  # Ctrl-C


class SpeakError(Exception):
    """Base of every error speakcli reports as one line; `exit_status` picks the code."""

    exit_status: ExitStatus = ExitStatus.ERROR


class UsageError(SpeakError):
    exit_status = ExitStatus.USAGE


class EmptyTextError(UsageError):
    def __init__(self, where: str = "the input") -> None:
        super().__init__(f"{where} has no text to speak; pass TEXT, or pipe text on stdin")


class NothingToSayError(UsageError):
    def __init__(self, where: str = "the input") -> None:
        super().__init__(f"{where} has nothing to say (only punctuation or symbols); pass words or numbers")


class UnknownLanguageError(UsageError):
    def __init__(self, language: str, engine: str, supported: list[str]) -> None:
        super().__init__(
            f"language {language!r} is not supported by the {engine} engine; use one of: {', '.join(supported)}"
        )


class VoiceError(SpeakError):
    exit_status = ExitStatus.VOICE


class ModelError(SpeakError):
    exit_status = ExitStatus.MODEL


class AudioDeviceError(SpeakError):
    exit_status = ExitStatus.AUDIO_DEVICE


class OutputError(SpeakError):
    exit_status = ExitStatus.OUTPUT


class SynthesisError(SpeakError):
    exit_status = ExitStatus.SYNTHESIS
