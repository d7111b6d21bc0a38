"""The help every command shows: plain metavars, whole one-line summaries, examples; and hidden old option names."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any, get_args

import typer
from typer._click import Context, HelpFormatter  # typer's own copy of click (0.28, as pyproject pins)
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from speakcli.cli.options import HIDDEN_ALIASES

# A metavar for a parameter declared without one, by its value's type: never a Python type name.
_TYPE_METAVARS: dict[type, str] = {Path: "PATH", str: "TEXT", int: "N", float: "NUMBER"}
# A parameter names no annotation: its click type's class stands in for it.
_CLICK_TYPES: dict[str, type] = {
    "TyperPath": Path,
    "StringParamType": str,
    "IntParamType": int,
    "FloatParamType": float,
}


def _fallback_metavar(param: Any) -> str | None:
    """What to show for a value of `param` when its declaration names no metavar (None for a flag)."""
    if isinstance(param, TyperArgument):
        return param.name.upper() if param.name else "ARG"
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    choices = _choices(param)
    if choices:
        return "[" + "|".join(choices) + "]"
    annotation: Any = _CLICK_TYPES.get(type(param.type).__name__, str)
    args = get_args(annotation)
    if args and not isinstance(annotation, type):  # list[X]: one X per use
        annotation = args[0]
    return _TYPE_METAVARS.get(annotation, "VALUE")


def _with_choices(param: Any) -> None:
    """Name the choices in a choice option's metavar ([auto|xtts|piper]) unless it already lists them."""
    choices = _choices(param)
    if isinstance(param, TyperOption) and choices and param.metavar and "|" not in param.metavar:
        param.metavar = "[" + "|".join(choices) + "]"


def _choices(param: Any) -> list[str]:
    """A choice option's values, from its click Choice type (none for another type)."""
    choices = getattr(getattr(param, "type", None), "choices", None)
    return [str(getattr(c, "value", c)) for c in choices or ()]


def _summary(help: str | None) -> str:
    """The first paragraph of a command's help, whole, on one line."""
    return " ".join(inspect.cleandoc(help or "").partition("\n\n")[0].split())


def _write_examples(epilog: str | None, formatter: HelpFormatter) -> None:
    """Examples as written (a shell line each, comments aligned), not rewrapped as prose."""
    lines = [ln for ln in inspect.cleandoc(epilog or "").splitlines() if ln.strip()]
    if not lines:
        return
    with formatter.section("Examples"):
        for line in lines:
            formatter.write(f"{'':>{formatter.current_indent}}{line}\n")


class SpeakCommand(TyperCommand):
    """A command whose --help reads like a well-kept CLI's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.metavar is None:
                param.metavar = _fallback_metavar(param)
            _with_choices(param)

    def get_short_help_str(self, limit: int = 45) -> str:
        # click cuts the summary to fit the command list, mid-sentence with "..."; the list wraps it instead.
        return _summary(self.short_help or self.help)

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                name = param.metavar or (param.name or "ARG").upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
        return pieces

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments, options = [], []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if isinstance(param, TyperArgument):
                # Typer shows an argument as "name <type>"; show its metavar, as the usage line does.
                name = (param.metavar or (param.name or "ARG").upper()) + ("..." if param.nargs != 1 else "")
                arguments.append((name, record[1]))
            else:
                # Typer writes "[env var: X; ...]"; the settings' options write "[env: X; ...]": one spelling.
                options.append((record[0], record[1].replace("[env var: ", "[env: ")))
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_examples(self.epilog, formatter)

    def make_parser(self, ctx: Context) -> Any:
        parser = super().make_parser(ctx)
        for alias, target in HIDDEN_ALIASES.get(self.name or "", {}).items():
            param = next(p for p in self.params if isinstance(p, TyperOption) and target in p.opts)
            # Parsed like the option it stands for, but absent from --help (which lists param.opts).
            parser.add_option(obj=param, opts=[alias], dest=param.name, action="store", nargs=param.nargs)
        return parser


class SpeakGroup(TyperGroup):
    """The top-level command: whole summaries in the command list, and examples."""

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _write_examples(self.epilog, formatter)


class SpeakTyper(typer.Typer):
    """A Typer app whose commands are SpeakCommands, so a command added later gets the same help."""

    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", SpeakCommand)
        return super().command(*args, **kwargs)
