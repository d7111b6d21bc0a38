"""Options shared by the commands, built from the Settings fields so flag, env var and help always agree."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from speakcli.cli.completion import complete_language, complete_voice
from speakcli.settings import ActionsName, EngineName, Settings

_FIELDS = {f.name: f for f in fields(Settings)}


def setting_help(name: str, help: str | None = None) -> str:
    """The help of the option for setting `name`: its words, then `[env: VAR; default: X]` from the field."""
    f = _FIELDS[name]
    extra = [f"env: {f.metadata['env']}"]
    if f.default is not MISSING and f.default is not None:  # a computed default (a folder) is shown by `info`
        extra.append(f"default: {f.default}")
    return f"{help or f.metadata['doc']}  [{'; '.join(extra)}]"


def setting(name: str, *decls: str, help: str | None = None, metavar: str | None = None, **kwargs: Any) -> Any:
    """A typer Option for the Settings field `name`: its metavar, and help naming its env var and default.

    Its value is None when the flag is absent, so `load_settings` goes on to the env var, the config, the default.
    """
    f = _FIELDS[name]
    return typer.Option(
        *(decls or (f"--{name.replace('_', '-')}",)),
        help=setting_help(name, help),
        metavar=metavar or f.metadata["metavar"],
        show_default=False,
        **kwargs,
    )


# -- --debug, accepted before and after the command ---------------------------------------------------------------
_debug: ContextVar[bool] = ContextVar("speakcli_debug", default=False)


def _remember_debug(value: bool) -> bool:
    if value:
        _debug.set(True)
    return value


def debug_requested() -> bool:
    """Whether this run's command line had --debug, before or after the command name."""
    return _debug.get()


def reset_debug() -> None:
    _debug.set(False)


Debug = Annotated[
    bool,
    typer.Option("--debug", help="Show tracebacks for errors.", callback=_remember_debug, expose_value=False),
]

# -- settings as options -----------------------------------------------------------------------------------------
Engine = Annotated[EngineName | None, setting("engine")]
ModelDir = Annotated[Path | None, setting("model_dir")]
Device = Annotated[str | None, setting("device")]
Precision = Annotated[str | None, setting("precision")]
VoicesDir = Annotated[Path | None, setting("voices_dir")]
Voice = Annotated[str | None, setting("voice", "--voice", "-v", autocompletion=complete_voice)]
Language = Annotated[str | None, setting("language", "--language", "-l", autocompletion=complete_language)]
Speed = Annotated[float | None, setting("speed")]
Temperature = Annotated[float | None, setting("temperature")]
Pause = Annotated[float | None, setting("pause")]
MaxBatch = Annotated[int | None, setting("max_batch")]
Seed = Annotated[int | None, setting("seed")]
OutputDevice = Annotated[str | None, setting("output_device")]
Verbatim = Annotated[bool | None, setting("verbatim", "--verbatim/--no-verbatim")]
Actions = Annotated[ActionsName | None, setting("actions")]
Lexicon = Annotated[Path | None, setting("lexicon")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]

# Where each command writes a folder of files: one spelling everywhere (-o is a file, for say and clone).
OUTPUT_DIR_DECLS = ("--output-dir", "-d")
# Old spellings, still parsed so scripts keep working, but not shown in --help: command -> alias -> option.
HIDDEN_ALIASES: dict[str, dict[str, str]] = {"batch": {"--out-dir": "--output-dir", "-o": "--output-dir"}}

AudioFormat = Literal["wav", "flac", "ogg", "opus", "mp3", "aac", "m4a", "pcm", "raw"]  # raw: another name for pcm


def engine_flags(
    engine: str | None,
    model_dir: Path | None,
    device: str | None,
    voices_dir: Path | None,
    precision: str | None = None,
) -> dict[str, Any]:
    return {
        "engine": engine,
        "model_dir": model_dir,
        "device": device,
        "voices_dir": voices_dir,
        "precision": precision,
    }


def text_flags(verbatim: bool | None, actions: str | None, lexicon: Path | None) -> dict[str, Any]:
    """The settings of the text step (Markdown read aloud or verbatim, actions, the lexicon)."""
    return {"verbatim": verbatim, "actions": actions, "lexicon": lexicon}
