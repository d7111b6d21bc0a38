"""Live status lines on a terminal: `say`'s sentences and audio made; `batch`'s chapters, items and time left."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

from speakcli.text import normalize

if TYPE_CHECKING:
    from speakcli.batch import Item, Result, Task


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


class BatchProgress:
    """A Rich bar on stderr when it is a terminal (and not quiet): the chapter being read, items done, audio made,
    this run's speed, and the time left.

    The time left is by text, not by items: the bar's own measure is the characters of the items this run makes
    (items made before, failed rows and empty ones take no time), so a long paragraph counts for what it costs.
    """

    def __init__(self, items: Sequence[Item], disable: bool) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        err = Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[done]}/{task.fields[items]} items, {task.fields[audio]:.1f} s audio, "),
            TextColumn("{task.fields[speed]:.2f}x, left"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
            disable=disable or not err.is_terminal,
            speed_estimate_period=600,  # an XTTS paragraph can take most of a minute: average over several
        )
        self.chars = {item.index: len(item.text) for item in items}
        self.chapters = len({item.chapter for item in items if item.chapter is not None})
        self.task = self.bar.add_task("batch", total=None, items=len(items), done=0, audio=0.0, speed=0.0)
        self.to_make: set[int] = set()
        self.done = 0
        self.audio = 0.0
        self.synth = 0.0

    @property
    def speed(self) -> float:
        """Audio seconds made per second of synthesis, by this run (not by earlier ones)."""
        return self.audio / self.synth if self.synth else 0.0

    def planned(self, tasks: Sequence[Task]) -> None:
        """What this run will make, once the batch knows which items an earlier run made."""
        from speakcli.batch import settled

        self.to_make = {t.item.index for t in tasks if settled(t) is None}
        self.bar.update(self.task, total=sum(self.chars[i] for i in self.to_make) or None)

    def advance(self, result: Result) -> None:
        if result.status == "ok" and not result.kept:
            self.audio += result.audio_seconds
            self.synth += result.synthesis_seconds
        self.done += 1
        chapter = (
            f"chapter {result.chapter}/{self.chapters} {_short(result.chapter_title or '')}"
            if result.chapter is not None
            else "batch"
        )
        self.bar.update(
            self.task,
            advance=self.chars[result.index] if result.index in self.to_make else 0,
            description=chapter,
            done=self.done,
            audio=self.audio,
            speed=self.speed,
        )

    def __enter__(self) -> BatchProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()


def _short(title: str, n: int = 32) -> str:
    title = normalize(title)  # the input's words, never its escape sequences, reach the terminal
    return title if len(title) <= n else title[: n - 1] + "…"
