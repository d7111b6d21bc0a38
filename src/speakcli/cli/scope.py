"""A command's lifetime: what it opens (the service and its worker thread) is closed when it ends, however it ends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported lazily: `speakcli --help` must not load the core
    from speakcli.service import SpeechService
    from speakcli.settings import Settings

_resources: ContextVar[contextlib.ExitStack | None] = ContextVar("speakcli_cli_resources", default=None)


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """Run one CLI command: every service it opens is closed (its worker joined) when the command ends."""
    with contextlib.ExitStack() as stack:
        token = _resources.set(stack)
        try:
            yield
        finally:
            _resources.reset(token)


def open_service(settings: Settings) -> SpeechService:
    """The command's SpeechService, closed by `command_scope` when the command ends."""
    from speakcli.service import SpeechService

    service = SpeechService(settings)
    stack = _resources.get()
    if stack is None:  # a command function called outside main(): its caller closes the service
        return service
    return stack.enter_context(service)
