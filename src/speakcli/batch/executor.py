"""Batch executors: how planned items get made. `LocalExecutor` runs them here, on the service's one worker."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from speakcli.audio import write_audio
from speakcli.batch.inorder import Spoken, Start, spoken_in_order
from speakcli.batch.items import Item
from speakcli.batch.manifest import Result, result_for
from speakcli.errors import SpeakError, UnwritableError
from speakcli.scheduling.jobs import Job, Priority
from speakcli.settings import Settings

if TYPE_CHECKING:
    from speakcli.engines.base import Voice
    from speakcli.service import SpeechService


@dataclass(frozen=True)
class Task:
    """One item of a run and all it takes to make it anywhere: plain data, picklable."""

    item: Item
    settings: Settings | None  # the item's resolved settings; None for an item that fails or is skipped
    done: dict[str, Any] | None = None  # the manifest record of an earlier run that made exactly this item


def settled(task: Task) -> Result | None:
    """The result of a task that needs no synthesis (a bad row, nothing to say, made before); None otherwise."""
    item = task.item
    if item.error:
        return result_for(item, "failed", error=item.error)
    if item.skip:
        return result_for(item, "skipped", reason=item.skip)
    if task.done is not None:
        rec = task.done
        return result_for(
            item,
            "ok",
            audio=float(rec.get("audio_seconds") or 0.0),
            synth=float(rec.get("synthesis_seconds") or 0.0),
            size=int(rec["bytes"]),
            kept=True,
        )
    return None


def item_start(service: SpeechService, item: Item, settings: Settings, voices: dict[str | None, Voice | None]) -> Start:
    """How to queue one planned item on the service's worker, as background work (for `spoken_in_order`).

    Besides the service it takes only picklable inputs, so an executor can call it in a worker process that
    built its own service. `voices` caches resolved voices across the calls of one process.
    """

    def start() -> Job[np.ndarray]:
        if settings.voice not in voices:
            voices[settings.voice] = service.voice(settings.voice)  # once per voice; XTTS latents cached once too
        options = service.options(settings.language, settings.speed, stream=False)
        return service.speak(item.text, voices[settings.voice], options, priority=Priority.BACKGROUND)

    return start


def written(service: SpeechService, item: Item, spoken: Spoken, out_dir: Path, stop_unwritable: bool = True) -> Result:
    """The item's file written whole or not at all from its audio, and its record; a failure fails it alone, except
    a write that would fail for every item (`UnwritableError`), which is raised when `stop_unwritable`."""
    if spoken.error is not None or spoken.audio is None:
        error = spoken.error if spoken.error is not None else "cancelled"
        return result_for(item, "failed", error=str(error))
    assert item.output is not None
    path = out_dir / item.output
    try:
        write_audio(path, spoken.audio, service.sample_rate)
    except UnwritableError as exc:
        if stop_unwritable:
            raise  # not this item's fault: every later item would fail the same way, so the run stops
        return result_for(item, "failed", error=str(exc))
    except SpeakError as exc:
        return result_for(item, "failed", error=str(exc))
    return result_for(
        item,
        "ok",
        audio=round(len(spoken.audio) / service.sample_rate, 3),
        synth=round(spoken.seconds, 3),
        size=path.stat().st_size,
    )


def make_items(
    service: SpeechService,
    tasks: Sequence[Task],
    out_dir: Path,
    stop: Callable[[], bool] = lambda: False,
    voices: dict[str | None, Voice | None] | None = None,
    stop_unwritable: bool = True,
) -> Iterator[Result]:
    """Each task's result, in order: settled ones as they are, the others made on the service's worker, as many
    at a time as it steps together (`spoken_in_order`). An unwritable output folder stops the run (raises) unless
    not `stop_unwritable` (a Ray worker, whose items fail alone)."""
    voices = {} if voices is None else voices
    by_index = {task.item.index: task for task in tasks}

    def starts() -> Iterator[tuple[int, Start | None]]:
        for task in tasks:
            if settled(task) is None:
                assert task.settings is not None
                yield task.item.index, item_start(service, task.item, task.settings, voices)
            else:
                yield task.item.index, None

    for index, spoken in spoken_in_order(service, starts(), stop):
        task = by_index[index]
        done = settled(task)
        yield done if done is not None else written(service, task.item, spoken or Spoken(), out_dir, stop_unwritable)


class Executor(Protocol):
    """Makes a run's tasks. `run_batch` keeps the manifest and the summary; an executor only makes files."""

    def run(
        self,
        service: SpeechService,
        tasks: Sequence[Task],
        out_dir: Path,
        on_result: Callable[[Result], None],
        stop: Callable[[], bool],
    ) -> list[Result]:
        """Make every task (`settled` ones need no synthesis), calling `on_result` as each finishes, in any order.

        Once `stop()` is true, start nothing more: return what is finished; the tasks not reached have no result.
        """
        ...


class LocalExecutor:
    """In this process, through the service's single worker: items are handed over in input order, as many at a
    time as the worker steps together (one on an engine that does not batch), and finish in that order."""

    def run(
        self,
        service: SpeechService,
        tasks: Sequence[Task],
        out_dir: Path,
        on_result: Callable[[Result], None],
        stop: Callable[[], bool],
    ) -> list[Result]:
        results = []
        for result in make_items(service, tasks, out_dir, stop):
            results.append(result)
            on_result(result)
        return results
