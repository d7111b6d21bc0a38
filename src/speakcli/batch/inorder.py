"""Many items spoken by the one worker as background work, a window at a time, their audio given back in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from speakcli.errors import SpeakError, WorkerClosedError

if TYPE_CHECKING:
    from speakcli.service import SpeechService
    from speakcli.worker import Job

K = TypeVar("K")
Start = Callable[[], "Job[np.ndarray]"]  # queues one item on the worker (raises SpeakError when it cannot)


@dataclass(frozen=True)
class Spoken:
    """What became of one item: its audio and the seconds the worker spent on it, the error it failed with, or
    that it was cancelled (its job was, from elsewhere: an HTTP batch job's cancel)."""

    audio: np.ndarray | None = None
    seconds: float = 0.0
    error: SpeakError | None = None
    cancelled: bool = False


def window(service: SpeechService) -> int:
    """How many items to hand the worker at once: as many as it steps together, so a batching engine batches them."""
    if not service.worker.loaded:
        service.load()  # the batch size is the loaded engine's (XTTS chooses per device and precision)
    return service.worker.max_batch


def spoken_in_order(
    service: SpeechService, items: Iterable[tuple[K, Start | None]], stop: Callable[[], bool] = lambda: False
) -> Iterator[tuple[K, Spoken | None]]:
    """Each item's outcome in input order, the items handed to the worker `window` at a time.

    An item whose start is None needs no synthesis: it comes back as (key, None) in its place. A failed item
    (its start or its synthesis raised a SpeakError) comes back with its error; the others go on. Once `stop()` is
    true no further item is handed over, and those already handed over are still finished. The worker closing
    under the run (`WorkerClosedError`, raised) and any exception of the caller's between items end it: whatever is
    still in the worker's hands is cancelled. One implementation for `batch` (here and in each Ray worker) and the
    server's batch jobs.
    """
    width: int | None = None
    in_flight: deque[tuple[K, Job[np.ndarray] | SpeakError | None]] = deque()
    pending = iter(items)
    try:
        while True:
            while not stop() and (width is None or len(in_flight) < width):
                nxt = next(pending, None)
                if nxt is None:
                    break
                key, start = nxt
                if start is not None and width is None:
                    width = window(service)
                in_flight.append((key, _started(start)))
                if start is None and len(in_flight) == 1:
                    break  # nothing before it: give it back now
            if not in_flight:
                return
            key, job = in_flight.popleft()
            yield key, _finished(job)
    finally:
        for _, job in in_flight:
            if job is not None and not isinstance(job, SpeakError):
                job.cancel()


def _started(start: Start | None) -> Job[np.ndarray] | SpeakError | None:
    if start is None:
        return None
    try:
        return start()
    except WorkerClosedError:
        raise  # the server is stopping: the run ends, not this item
    except SpeakError as exc:
        return exc


def _finished(job: Job[np.ndarray] | SpeakError | None) -> Spoken | None:
    if job is None:
        return None
    if isinstance(job, SpeakError):
        return Spoken(error=job)
    try:
        chunks = list(job)
    except WorkerClosedError:
        raise  # the server is stopping: the run ends, not this item
    except SpeakError as exc:
        return Spoken(error=exc)
    if not job.completed:
        return Spoken(cancelled=True)
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return Spoken(audio, float(job.elapsed or 0.0))
