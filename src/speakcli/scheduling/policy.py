"""Who the worker serves next: interactive before background, newcomers first, then in turns; nobody starves."""

from __future__ import annotations

from collections import deque

from speakcli.scheduling.jobs import Priority
from speakcli.scheduling.runs import SpeechRun

# While interactive work keeps the worker busy, background work still gets one turn in this many (or one place in
# every batch), so a batch job crawls on instead of stopping.
BACKGROUND_EVERY = 4


class Scheduler:
    """The speech runs in the worker's hands and the order it serves them in.

    Within a class, a run that has not yet handed out audio goes first (in arrival order), so a short request
    that arrives while others run gets its first audio after the step in progress; the rest take turns (round
    robin). Interactive runs go before background ones, but background work is given a turn (or a batch place)
    whenever it has waited `BACKGROUND_EVERY` turns.
    """

    def __init__(self) -> None:
        self._runs: dict[Priority, deque[SpeechRun]] = {p: deque() for p in Priority}
        self._background_waited = 0  # turns (or steps) given since background work last had one

    def add(self, run: SpeechRun) -> None:
        self._runs[run.priority].append(run)

    def remove(self, run: SpeechRun) -> None:
        queue = self._runs[run.priority]
        if run in queue:
            queue.remove(run)

    def __len__(self) -> int:
        return sum(len(q) for q in self._runs.values())

    def runs(self) -> list[SpeechRun]:
        return [run for q in self._runs.values() for run in q]

    def count(self, priority: Priority) -> int:
        return len(self._runs[priority])

    def _ordered(self, priority: Priority) -> list[SpeechRun]:
        """A class's runs in serving order: those with no audio yet by arrival, then the others in turn."""
        queue = self._runs[priority]
        fresh = sorted((r for r in queue if not r.has_audio), key=lambda r: r.order)
        return fresh + [r for r in queue if r.has_audio]

    def _served(self, chosen: list[SpeechRun]) -> None:
        """The chosen runs go to the back of their class's turn order; background's wait is counted."""
        for run in chosen:
            queue = self._runs[run.priority]
            queue.remove(run)
            queue.append(run)
        if any(r.priority is Priority.BACKGROUND for r in chosen) or not self._runs[Priority.BACKGROUND]:
            self._background_waited = 0
        else:
            self._background_waited += 1

    def next_turn(self) -> SpeechRun | None:
        """The one run to give the next turn (a sentence) to; None when there is none."""
        chosen = self.next_batch(1)
        return chosen[0] if chosen else None

    def next_batch(self, size: int) -> list[SpeechRun]:
        """Up to `size` runs to step together: interactive first, background in the places left, and one background
        run in place of the last interactive one when background work has waited its share."""
        interactive = self._ordered(Priority.INTERACTIVE)
        background = self._ordered(Priority.BACKGROUND)
        chosen = interactive[:size]
        chosen += background[: size - len(chosen)]
        waited = self._background_waited + 1 >= BACKGROUND_EVERY
        if background and waited and not any(r.priority is Priority.BACKGROUND for r in chosen):
            chosen[-1] = background[0]
        self._served(chosen)
        return chosen
