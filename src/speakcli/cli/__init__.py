"""The Typer app and the one boundary that maps errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated, Any

import typer
from typer._click import exceptions as cx  # typer's own copy of click (0.28, as pyproject pins)

from speakcli import __version__
from speakcli.cli import (
    batch,
    clone,
    devices,
    download,
    info,
    languages,
    precompute,
    say,
    serve,
    voices,
    watch,
    watch_control,
)
from speakcli.cli import options as o
from speakcli.cli.command import SpeakGroup, SpeakTyper
from speakcli.cli.scope import command_scope
from speakcli.errors import ExitStatus, ReaderGoneError, SpeakError
from speakcli.terminal import Terminal, terminal, using

EXAMPLES = """
speakcli say "Good morning."                   # speak with the default voice
speakcli say "Hallo." -l de -o hallo.flac      # write a file instead
speakcli batch book.txt -d audiobook/          # many lines, one model load, resumable
speakcli watch chat.txt                        # speak each new line of a file
speakcli COMMAND --help                        # each command's options and examples
speakcli --install-completion                  # Tab completion for your shell
"""

app = SpeakTyper(
    name="speakcli",
    cls=SpeakGroup,
    help="Speak text from the command line with Coqui XTTS v2 or the bundled Piper voice.",
    epilog=EXAMPLES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts name env vars in [brackets]; show them, do not parse them as markup
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"speakcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: o.Debug = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Speak text from the command line with Coqui XTTS v2 or the bundled Piper voice."""


app.command("say", epilog=say.EXAMPLES)(say.say)
app.command("batch", epilog=batch.EXAMPLES)(batch.batch)
app.command("clone", epilog=clone.EXAMPLES)(clone.clone)
app.command("voices", epilog=voices.EXAMPLES)(voices.voices)
app.command("precompute", epilog=precompute.EXAMPLES)(precompute.precompute)
app.command("watch", epilog=watch.EXAMPLES)(watch.watch)
app.command("watch-control", epilog=watch_control.EXAMPLES)(watch_control.watch_control)
app.command("serve", epilog=serve.EXAMPLES)(serve.serve)
app.command("languages", epilog=languages.EXAMPLES)(languages.languages)
app.command("devices", epilog=devices.EXAMPLES)(devices.devices)
app.command("info", epilog=info.EXAMPLES)(info.info)
app.command("download", epilog=download.EXAMPLES)(download.download)


def app_commands() -> set[str]:
    return {c.name for c in app.registered_commands if c.name}


def _err(message: str) -> None:
    # One line, always: wrapped library messages can carry newlines.
    print("speakcli: " + " ".join(message.split()), file=terminal().stderr)


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return "speakcli: " + record.levelname.lower() + ": " + " ".join(record.getMessage().split())


class _TerminalHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Log lines go to the stderr of the command being run (see `speakcli.terminal`), found at each line."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return terminal().stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _setup_logging() -> None:
    logger = logging.getLogger("speakcli")
    if not any(getattr(h, "_speakcli", False) for h in logger.handlers):
        handler = _TerminalHandler()
        handler.setFormatter(_LineFormatter())
        handler._speakcli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def _silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so what is still buffered is flushed there at exit."""
    try:
        stdout = terminal().stdout
        if stdout is None:
            return
        fd = stdout.fileno()
    except (AttributeError, OSError, ValueError):  # no stdout, or not a real file (a test's capture)
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _debug() -> bool:
    """--debug was given, before or after the command name (or SPEAKCLI_DEBUG=1)."""
    return o.debug_requested() or os.environ.get("SPEAKCLI_DEBUG") == "1"


def main(argv: list[str] | None = None, term: Terminal | None = None) -> int:
    """Run the CLI; every error ends here as one line on stderr and an ExitStatus. `term` gives the command other
    standard streams than the process's (a test running it in-process, as on a terminal or in a pipe)."""
    with using(term):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    _setup_logging()
    o.reset_debug()
    try:
        with command_scope():
            result = int(app(args=args, prog_name="speakcli", standalone_mode=False) or 0)
        if result == ExitStatus.INTERRUPTED:
            # Typer turns Ctrl-C into a silent return of 130: say why the command stopped.
            _err("interrupted")
        return result
    except typer.Exit as exc:
        return int(exc.exit_code)
    except cx.NoArgsIsHelpError as exc:
        if exc.ctx is not None:
            print(exc.ctx.get_help(), file=terminal().stdout)
        return ExitStatus.USAGE
    except cx.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        # Typer words a bad choice "Value error, 'x' is not one of ...": the first two words say nothing.
        _err(f"usage error: {exc.format_message().replace('Value error, ', '')}{hint}")
        return ExitStatus.USAGE
    except (typer.Abort, KeyboardInterrupt):
        _err("interrupted")
        return ExitStatus.INTERRUPTED
    except ReaderGoneError:
        # The reader went away (`speakcli say - -o - | head -c 10`): its choice, so no message; the job was
        # cancelled on the way out. Stdout now points at /dev/null, so the flush at exit cannot fail again.
        _silence_stdout()
        return ExitStatus.BROKEN_PIPE
    except SpeakError as exc:
        if _debug():
            traceback.print_exc(file=terminal().stderr)
        from speakcli.cli.hints import render

        _err(f"error: {render(exc, next((a for a in args if a in app_commands()), None))}")
        return exc.exit_status
    except Exception as exc:
        if _debug():
            traceback.print_exc(file=terminal().stderr)
        _err(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return ExitStatus.ERROR
