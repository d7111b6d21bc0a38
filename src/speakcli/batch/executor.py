"""Batch executors: how planned items get made. `LocalExecutor` runs them here, on the service's one worker."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from speakcli.audio import write_audio
from speakcli.batch.items import Item
from speakcli.batch.manifest import Result, result_for
from speakcli.errors import SpeakError, UnwritableError
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


def make_item(
    service: SpeechService,
    item: Item,
    settings: Settings,
    out_dir: Path,
    voices: dict[str | None, Voice | None] | None = None,
) -> Result:
    """Speak one planned item with `service` and write its file whole or not at all; a failure fails it alone,
    except a write that would fail for every item (`UnwritableError`), which is raised.

    Besides the service it takes only picklable inputs, so an executor can call it in a worker process that
    built its own service. `voices` caches resolved voices across the calls of one process.
    """
    assert item.output is not None
    voices = {} if voices is None else voices
    try:
        if settings.voice not in voices:
            voices[settings.voice] = service.voice(settings.voice)  # once per voice; XTTS latents cached once too
        options = service.options(settings.language, settings.speed, stream=False)
        job = service.speak(item.text, voices[settings.voice], options)
        chunks = list(job)
        audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        path = out_dir / item.output
        write_audio(path, audio, service.sample_rate)
    except UnwritableError:
        raise  # not this item's fault: every later item would fail the same way, so the run stops
    except SpeakError as exc:
        return result_for(item, "failed", error=str(exc))
    except Exception as exc:  # an engine's own error (a missing package, a crash on odd text): this item only
        return result_for(item, "failed", error=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
    return result_for(
        item,
        "ok",
        audio=round(len(audio) / service.sample_rate, 3),
        synth=round(float(job.elapsed or 0.0), 3),
        size=path.stat().st_size,
    )


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
    """In this process, one item at a time and in input order, through the service's single worker."""

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
        for task in tasks:
            if stop():
                break
            result = settled(task)
            if result is None:
                assert task.settings is not None
                result = make_item(service, task.item, task.settings, out_dir, voices)
            results.append(result)
            on_result(result)
        return results
