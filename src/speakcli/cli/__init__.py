"""The Typer app and the one boundary that maps errors to exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Annotated

import typer

from speakcli import __version__
from speakcli.cli import batch, clone, download, info, precompute, say, serve, voices, watch
from speakcli.cli.scope import command_scope
from speakcli.errors import ExitStatus, SpeakError

try:  # Typer >= 0.29 vendors its own click; older Typer uses the click package.
    from typer._click import exceptions as cx
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click import exceptions as cx  # type: ignore[no-redef]

app = typer.Typer(
    name="speakcli",
    help="Speak text from the command line with Coqui XTTS v2 or the bundled Piper voice.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help texts name env vars in [brackets]; show them, do not parse them as markup
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"speakcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Speak text from the command line with Coqui XTTS v2 or the bundled Piper voice."""


app.command("say")(say.say)
app.command("batch")(batch.batch)
app.command("clone")(clone.clone)
app.command("voices")(voices.voices)
app.command("precompute")(precompute.precompute)
app.command("watch")(watch.watch)
app.command("serve")(serve.serve)
app.command("info")(info.info)
app.command("download")(download.download)


def app_commands() -> set[str]:
    return {c.name for c in app.registered_commands if c.name}


def _err(message: str) -> None:
    # One line, always: wrapped library messages can carry newlines.
    print("speakcli: " + " ".join(message.split()), file=sys.stderr)


class _LineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return "speakcli: " + record.levelname.lower() + ": " + " ".join(record.getMessage().split())


def _setup_logging() -> None:
    logger = logging.getLogger("speakcli")
    if not any(getattr(h, "_speakcli", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_LineFormatter())
        handler._speakcli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; every error ends here as one line on stderr and an ExitStatus."""
    args = sys.argv[1:] if argv is None else list(argv)
    _setup_logging()
    debug = "--debug" in args or os.environ.get("SPEAKCLI_DEBUG") == "1"
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
            print(exc.ctx.get_help())
        return ExitStatus.USAGE
    except cx.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _err(f"usage error: {exc.format_message()}{hint}")
        return ExitStatus.USAGE
    except (typer.Abort, KeyboardInterrupt):
        _err("interrupted")
        return ExitStatus.INTERRUPTED
    except SpeakError as exc:
        if debug:
            traceback.print_exc()
        from speakcli.cli.hints import render

        _err(f"error: {render(exc, next((a for a in args if a in app_commands()), None))}")
        return exc.exit_status
    except BrokenPipeError:
        # The reader went away (e.g. `speakcli say - -o - | head -c 10`): nothing useful to report.
        sys.stderr.close()
        return ExitStatus.ERROR
    except Exception as exc:
        if debug:
            traceback.print_exc()
        _err(f"unexpected error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback)")
        return ExitStatus.ERROR
