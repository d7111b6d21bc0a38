"""`speakcli watch-control`: skip, clear, pause, resume or ask a running `speakcli watch`, e.g. from a hotkey."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli watch-control skip                  # the one running watch: stop the line being spoken
speakcli watch-control clear chat.txt        # the watch of chat.txt: drop the lines waiting
speakcli watch-control pause; speakcli watch-control resume
speakcli watch-control status --json
"""

Command = Literal["skip", "clear", "pause", "resume", "status"]


def watch_control(
    command: Annotated[
        Command, typer.Argument(help="skip, clear, pause, resume or status.", metavar="COMMAND", show_default=False)
    ],
    target: Annotated[
        Path | None,
        typer.Argument(
            help="The file or folder the watch follows (default: the only watch running).", metavar="TARGET"
        ),
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option("--state-file", help="The --state-file the watch was given.", metavar="FILE")
    ] = None,
    as_json: o.Json = False,
    debug: o.Debug = False,
) -> int:
    """Control a running `speakcli watch` through the socket beside its state file (its user only)."""
    from speakcli.errors import ExitStatus, UnreachableError
    from speakcli.watch.channel import send_command

    reply = send_command(_socket(target, state_file), command)
    if not reply.get("ok"):
        raise UnreachableError(f"the watch daemon refused {command}: {reply.get('error', 'no reason given')}")
    reply.pop("ok")
    print(json.dumps(reply) if as_json else _describe(command, reply))
    return ExitStatus.OK


def _socket(target: Path | None, state_file: Path | None) -> Path:
    """The control socket: the state file's (named, or the target's default), or the only one a daemon answers on."""
    from speakcli import dirs
    from speakcli.errors import UnreachableError, UsageError
    from speakcli.watch import default_state_file
    from speakcli.watch.channel import running_sockets, socket_path

    if state_file is not None and target is not None:
        raise UsageError("give TARGET or --state-file, not both")
    if state_file is not None:
        return socket_path(state_file.expanduser())
    if target is not None:
        return socket_path(default_state_file(target.expanduser()))
    folder = dirs.state_dir() / "watch"
    found = running_sockets(folder)
    if not found:
        raise UnreachableError(f"no speakcli watch is running (no control socket answers in {folder})")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise UsageError(f"several watches are running ({names}); name the TARGET of the one to control")
    return found[0]


def _describe(command: str, reply: dict[str, Any]) -> str:
    if command == "skip":
        return "skipped line {}".format(reply["skipped"]) if reply.get("skipped") else "nothing was being spoken"
    if command == "clear":
        return f"cleared {reply.get('cleared', 0)} line(s)"
    if command in ("pause", "resume"):
        return str(reply.get("state"))
    line = reply.get("line")
    now = f"line {line['seq']}: {line['text'][:60]}" if line else "no line"
    return (
        f"{reply.get('state')}; {now}; queued {reply.get('queued')}, spoken {reply.get('spoken')}, "
        f"skipped {reply.get('skipped')}, dropped {reply.get('dropped')}"
    )
