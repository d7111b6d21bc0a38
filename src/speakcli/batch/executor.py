"""Batch executors: how planned items get made. `LocalExecutor` runs them here, on the service's one worker."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from speakcli.audio import write_audio
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


def start_item(
    service: SpeechService,
    item: Item,
    settings: Settings,
    voices: dict[str | None, Voice | None] | None = None,
) -> Job[np.ndarray] | Result:
    """Queue one planned item on the service's worker (as background work); its failed result when it cannot be.

    Besides the service it takes only picklable inputs, so an executor can call it in a worker process that
    built its own service. `voices` caches resolved voices across the calls of one process.
    """
    voices = {} if voices is None else voices
    try:
        if settings.voice not in voices:
            voices[settings.voice] = service.voice(settings.voice)  # once per voice; XTTS latents cached once too
        options = service.options(settings.language, settings.speed, stream=False)
        return service.speak(item.text, voices[settings.voice], options, priority=Priority.BACKGROUND)
    except SpeakError as exc:
        return result_for(item, "failed", error=str(exc))


def finish_item(service: SpeechService, item: Item, job: Job[np.ndarray] | Result, out_dir: Path) -> Result:
    """Wait for an item's audio and write its file whole or not at all; a failure fails it alone, except a write
    that would fail for every item (`UnwritableError`), which is raised."""
    if isinstance(job, Result):
        return job
    assert item.output is not None
    try:
        chunks = list(job)
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        path = out_dir / item.output
        write_audio(path, audio, service.sample_rate)
    except UnwritableError:
        raise  # not this item's fault: every later item would fail the same way, so the run stops
    except SpeakError as exc:
        return result_for(item, "failed", error=str(exc))
    return result_for(
        item,
        "ok",
        audio=round(len(audio) / service.sample_rate, 3),
        synth=round(float(job.elapsed or 0.0), 3),
        size=path.stat().st_size,
    )


def make_item(
    service: SpeechService,
    item: Item,
    settings: Settings,
    out_dir: Path,
    voices: dict[str | None, Voice | None] | None = None,
) -> Result:
    """Speak one planned item with `service` and write its file whole or not at all; a failure fails it alone."""
    return finish_item(service, item, start_item(service, item, settings, voices), out_dir)


def window(service: SpeechService) -> int:
    """How many items to hand the worker at once: as many as it steps together, so a batching engine batches them."""
    service.load()  # the batch size is the loaded engine's (XTTS chooses per device and precision)
    return service.worker.max_batch


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
        voices: dict[str | None, Voice | None] = {}
        results: list[Result] = []
        in_flight: deque[tuple[Task, Job[np.ndarray] | Result]] = deque()
        width = window(service) if any(settled(t) is None for t in tasks) else 1

        def finish_oldest() -> None:
            task, job = in_flight.popleft()
            result = finish_item(service, task.item, job, out_dir)
            results.append(result)
            on_result(result)

        try:
            for task in tasks:
                if stop():
                    break
                result = settled(task)
                if result is None:
                    assert task.settings is not None
                    in_flight.append((task, start_item(service, task.item, task.settings, voices)))
                else:
                    in_flight.append((task, result))
                while len(in_flight) >= width or (in_flight and isinstance(in_flight[0][1], Result)):
                    finish_oldest()
            while in_flight:  # what was handed over is finished, also after a stop: it is in progress
                finish_oldest()
        finally:
            for _, job in in_flight:  # a second Ctrl-C: nothing more is made
                if not isinstance(job, Result):
                    job.cancel()
        return results
