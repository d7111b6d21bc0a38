"""A live status line on a terminal while a text is spoken: the model loading, then sentences done and audio made."""

from __future__ import annotations

from types import TracebackType
from typing import Any


class SpeakProgress:
    """Rich progress on stderr, shown only when stderr is a terminal and not quiet; otherwise it does nothing.

    `sentence` is called from the synthesis worker thread (the service's `on_progress`), `audio` from the thread
    that consumes the chunks; Rich's progress takes its own lock.
    """

    def __init__(self, engine: str, quiet: bool = False) -> None:
        self._bar: Any = None
        self._task: Any = None
        self._seconds = 0.0
        from speakcli.terminal import terminal

        term = terminal()
        if quiet or not term.stderr_isatty:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        console = Console(file=term.stderr, force_terminal=True)
        if console.is_dumb_terminal:  # no cursor movement: a live line would print a new line at every update
            return
        self._bar = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("sentences, {task.fields[seconds]:.1f} s of audio"),
            console=console,
            transient=True,
            # Our own writes (audio on stdout, the log on stderr) must not pass through Rich's redirection.
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._task = self._bar.add_task(f"loading the {engine} model", total=None, seconds=0.0)

    def sentence(self, done: int, total: int) -> None:
        """`done` of `total` sentences are made; 0 means the model is loaded and synthesis starts."""
        bar = self._bar  # read once: the consumer's thread may stop it meanwhile
        if bar is not None:
            bar.update(self._task, description="speaking", completed=done, total=total)

    def audio(self, seconds: float) -> None:
        """`seconds` more audio has been made."""
        self._seconds += seconds
        bar = self._bar
        if bar is not None:
            bar.update(self._task, seconds=self._seconds)

    def stop(self) -> None:
        """Clear the line, so what is printed next is not drawn over. Idempotent."""
        bar, self._bar = self._bar, None
        if bar is not None:
            bar.stop()

    def __enter__(self) -> SpeakProgress:
        if self._bar is not None:
            self._bar.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
