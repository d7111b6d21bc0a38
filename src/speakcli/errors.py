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
    UNREACHABLE = 9  # watch-control: no watch daemon answers, or its socket is not this user's alone
    INTERRUPTED = 130  # Ctrl-C
    BROKEN_PIPE = 141  # stdout's reader left (`| head`): 128 + SIGPIPE, as a tool that SIGPIPE ends reports
    TERMINATED = 143  # SIGTERM stopped a run part way: 128 + SIGTERM


class Hint:
    """What the user can do about an error, as a key: each front end words it (the CLI names its flags)."""

    FORCE = "force"  # replace the existing output or voice
    WRITE_FILE = "write_file"  # write audio to a file instead of playing it
    OUTPUT_DEVICE = "output_device"  # choose another audio output
    MODEL_DIR = "model_dir"  # point at an XTTS model folder (or download one)
    DEVICE_CPU = "device_cpu"  # run on the CPU
    ENGINE_XTTS = "engine_xtts"  # this needs the XTTS engine
    LIST_VOICES = "list_voices"  # see which voices exist
    VOICE_CLIP = "voice_clip"  # give a reference clip
    STATE_FILE = "state_file"  # give this daemon its own state file
    EVENTS_PATH = "events_path"  # write events somewhere else
    OUTPUT_DIR = "output_dir"  # write output files to another folder
    NAME_TEMPLATE = "name_template"  # fix the output name template
    GIVE_TEXT = "give_text"  # give some text to speak
    VERBATIM = "verbatim"  # speak the text as written, markup and all
    NO_SERVER = "no_server"  # speak without the running server


class SpeakError(Exception):
    """Base of every error speakcli reports as one line.

    The message says what is wrong, in words every front end can show; `code` names the error for machines
    (HTTP's JSON, events); `hint` (a `Hint`) says what the user can do, worded by each front end;
    `exit_status` picks the CLI's exit code.
    """

    exit_status: ExitStatus = ExitStatus.ERROR
    code: str = "error"

    def __init__(self, message: str = "", *, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
        if code is not None:
            self.code = code

    def prefixed(self, where: str) -> SpeakError:
        """The same error (class, code, hint), its message led by `where` (e.g. which item of many)."""
        return self.reworded(f"{where}: {self}")

    def reworded(self, message: str) -> SpeakError:
        """The same error (class, code, hint and any other attribute) with another message."""
        err = type(self).__new__(type(self))
        err.__dict__.update(self.__dict__)
        Exception.__init__(err, message)
        return err


class UsageError(SpeakError):
    exit_status = ExitStatus.USAGE
    code = "invalid_input"


class EmptyTextError(UsageError):
    code = "empty_text"

    def __init__(self, where: str = "the input") -> None:
        super().__init__(f"{where} has no text to speak", hint=Hint.GIVE_TEXT)


class NothingToSayError(UsageError):
    code = "nothing_to_say"

    def __init__(self, where: str = "the input") -> None:
        super().__init__(f"{where} has nothing to say (only punctuation or symbols); pass words or numbers")


class OnlyMarkupError(NothingToSayError):
    """Text with words in it, none of which is left once its Markdown is read aloud (code, tables, emoji...)."""

    def __init__(self, where: str = "the input") -> None:
        UsageError.__init__(
            self,
            f"{where} has nothing to say once its Markdown is read aloud (code blocks, tables, link addresses, emoji "
            "and skipped actions are not spoken)",
            hint=Hint.VERBATIM,
        )


class UnknownLanguageError(UsageError):
    code = "unknown_language"

    def __init__(self, language: str, engine: str, supported: list[str]) -> None:
        super().__init__(
            f"language {language!r} is not supported by the {engine} engine; use one of: {', '.join(supported)}"
        )


class VoiceError(SpeakError):
    exit_status = ExitStatus.VOICE
    code = "voice"


class ModelError(SpeakError):
    exit_status = ExitStatus.MODEL
    code = "model"


class AudioDeviceError(SpeakError):
    exit_status = ExitStatus.AUDIO_DEVICE
    code = "audio_device"


class OutputError(SpeakError):
    exit_status = ExitStatus.OUTPUT
    code = "output"


class FormatUnavailableError(OutputError):
    """An audio format whose encoder comes from an optional package that is not installed (AAC: PyAV)."""

    code = "unsupported_format"


class ReaderGoneError(SpeakError):
    """Stdout's reader closed the pipe (`speakcli say ... -o - | head -c 100`): its choice, so the CLI stops
    making audio and exits quietly with 141, as a tool that SIGPIPE ends does; audio was cut, so never 0."""

    exit_status = ExitStatus.BROKEN_PIPE
    code = "reader_gone"

    def __init__(self) -> None:
        super().__init__("the reader of stdout closed it; the rest of the audio was not written")


class SynthesisError(SpeakError):
    exit_status = ExitStatus.SYNTHESIS
    code = "synthesis"


class StreamCutError(SynthesisError):
    """A server's stream ended before its end after some audio already went out (played, or written to a pipe)."""

    code = "stream_cut"

    def __init__(self, message: str) -> None:
        super().__init__(message, hint=Hint.NO_SERVER)


class BusyError(SpeakError):
    """The queue is full: try again after `retry_after` seconds."""

    exit_status = ExitStatus.SYNTHESIS
    code = "busy"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class WorkerClosedError(BusyError):
    """The synthesis worker is closed or closing (the process or server is stopping): the job will not run."""

    def __init__(self, message: str = "the synthesis worker is closed; the server is shutting down") -> None:
        super().__init__(message, retry_after=5)


class UnreachableError(SpeakError):
    """`watch-control` found no daemon to talk to, or refused one another user could control or impersonate."""

    exit_status = ExitStatus.UNREACHABLE
    code = "unreachable"


class LimitError(UsageError):
    """A request past a limit the server sets (text length, upload size, number of clips or items)."""

    code = "too_large"


class NotFoundError(UsageError):
    """A name a request gives (a job, an item, a voice sample) that does not exist."""

    code = "not_found"


class UnwritableError(OutputError):
    """A write failed in a way that every later write to the same folder would repeat (a full disk or quota, a
    read-only file system, no permission, a file size limit): a run of many files stops instead of going on."""
