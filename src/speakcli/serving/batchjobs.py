"""Batch jobs a server runs in the background, through the pipeline every batch shares: requests go first."""

from __future__ import annotations

import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speakcli.audio.encode import AudioFormat, encode
from speakcli.batch.inorder import Start, spoken_in_order
from speakcli.engines.base import SynthesisOptions, Voice
from speakcli.errors import LimitError, NotFoundError, SpeakError, UsageError, WorkerClosedError
from speakcli.fsutil import atomic_write
from speakcli.lifecycle import ServiceThread
from speakcli.scheduling.jobs import Priority

if TYPE_CHECKING:
    from speakcli.serving.gateway import Gateway, SpeechRequest
    from speakcli.worker import Job

_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


@dataclass(frozen=True, slots=True)
class ItemWork:
    """What an item needs until it is made; dropped when it ends (a 10,000-item job's text is up to 40 MB)."""

    text: str
    voice: Voice | None
    options: SynthesisOptions


@dataclass(slots=True)
class BatchItem:
    """One item as its job's status reports it, plus its work while it has not ended."""

    id: str
    index: int
    work: ItemWork | None
    status: str = "queued"  # queued, running, done, failed, cancelled
    error: str | None = None
    file: Path | None = None
    seconds: float | None = None

    def end(self, status: str, error: str | None = None) -> None:
        """Record how the item ended and let its text go: a kept job holds only what its status shows."""
        self.status, self.error, self.work = status, error, None


@dataclass
class BatchJob:
    id: str
    format: AudioFormat
    folder: Path
    items: list[BatchItem]
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    current: list[Job[np.ndarray]] = field(default_factory=list)  # its items in the worker's hands

    @property
    def status(self) -> str:
        if self.cancelled.is_set():
            return "cancelled"
        if not self.finished.is_set():
            return "running" if any(i.status != "queued" for i in self.items) else "queued"
        return "failed" if any(i.status == "failed" for i in self.items) else "done"

    def item(self, item_id: str) -> BatchItem:
        for item in self.items:
            if item.id == item_id:
                return item
        raise NotFoundError(f"job {self.id} has no item {item_id!r}")

    def snapshot(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for item in self.items:
            counts[item.status] = counts.get(item.status, 0) + 1
        return {
            "job": self.id,
            "status": self.status,
            "format": self.format.name,
            "total": len(self.items),
            "counts": counts,
            "items": [
                {
                    "id": i.id,
                    "status": i.status,
                    **({"error": i.error} if i.error else {}),
                    **({"seconds": i.seconds} if i.seconds is not None else {}),
                }
                for i in self.items
            ],
        }


class BatchJobs:
    """The server's batch jobs: each runs on its own thread, which hands the worker a few items at a time (as many
    as it steps together) as background work, so a request that arrives is served first and a 10,000-item job
    never sits in the worker's hands whole. Files go to a private temporary folder, removed
    at close; the oldest finished jobs are forgotten past `Limits.max_kept_jobs`.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self._jobs: OrderedDict[str, BatchJob] = OrderedDict()
        self._threads: dict[str, ServiceThread] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._root: Path | None = None

    def _folder(self, job_id: str) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="speakcli-serve-jobs-"))
            root = self._root
        folder = root / job_id
        folder.mkdir()
        return folder

    def submit(self, requests: list[tuple[str | None, SpeechRequest]], fmt: AudioFormat) -> BatchJob:
        """Check every item (all or nothing), then start the job; returns at once."""
        if self._stop.is_set() or self.gateway.closing:
            from speakcli.errors import BusyError

            raise BusyError("the server is shutting down", retry_after=5)
        limits = self.gateway.limits
        running = self.counts()["running"]
        if running >= limits.max_batch_jobs:
            from speakcli.errors import BusyError

            raise BusyError(f"{running} batch jobs are running, the most this server takes", retry_after=30)
        if not requests:
            raise UsageError("items is empty; send at least one item")
        if len(requests) > limits.max_batch_items:
            raise LimitError(f"{len(requests)} items sent; the limit is {limits.max_batch_items}")
        items, seen = [], set()
        for index, (item_id, request) in enumerate(requests):
            ident = str(index + 1) if item_id is None else item_id
            # An id of dots only would be a dot segment in its URL, which clients resolve away (to the job's URL).
            if not ident or len(ident) > 64 or not set(ident) <= _ID_CHARS or set(ident) == {"."}:
                raise UsageError(
                    f"item id {ident!r} is not allowed; use up to 64 letters, digits, '.', '_', '-', not only dots"
                )
            if ident in seen:
                raise UsageError(f"item id {ident!r} is given twice; ids must be unique")
            seen.add(ident)
            try:
                voice, opts = self.gateway.prepare(request)
            except SpeakError as exc:
                raise exc.prefixed(f"item {ident}") from None
            items.append(BatchItem(ident, index, ItemWork(request.text, voice, opts)))
        job_id = uuid.uuid4().hex[:16]
        job = BatchJob(job_id, fmt, self._folder(job_id), items)

        def cancel() -> None:
            self.cancel(job_id)

        thread = ServiceThread(f"speakcli-batch-{job_id}", lambda stop: self._run(job, stop), on_stop=cancel)
        with self._lock:
            self._jobs[job_id] = job
            self._threads[job_id] = thread
        thread.start()
        self._forget_old()
        return job

    def _run(self, job: BatchJob, stop: threading.Event) -> None:
        """Make the job's items with the batch pipeline every batch shares (`spoken_in_order`): as background
        work, a window at a time; an item fails alone, a cancel or the server's stop ends the job."""
        service = self.gateway.service
        items = {item.index: item for item in job.items}

        def starts() -> Iterator[tuple[int, Start | None]]:
            for item in job.items:
                work = item.work
                if work is None:  # ended already (never, before the job runs)
                    continue

                def start(item: BatchItem = item, work: ItemWork = work) -> Job[np.ndarray]:
                    item.status = "running"
                    current = service.speak(work.text, work.voice, work.options, priority=Priority.BACKGROUND)
                    job.current.append(current)
                    return current

                yield item.index, start

        stopping = lambda: job.cancelled.is_set() or stop.is_set()  # noqa: E731
        try:
            for index, spoken in spoken_in_order(service, starts(), stopping):
                item = items[index]
                assert spoken is not None
                if spoken.cancelled:
                    item.end("cancelled")
                    break
                if spoken.error is not None:
                    # this item fails alone (an engine's own crash is a synthesis failure too)
                    item.end("failed", " ".join(str(spoken.error).split()) or type(spoken.error).__name__)
                    continue
                assert spoken.audio is not None
                path = job.folder / f"{item.index + 1:06d}{job.format.extensions[0]}"
                atomic_write(path, encode(spoken.audio, service.sample_rate, job.format))
                item.file, item.seconds = path, round(len(spoken.audio) / service.sample_rate, 3)
                item.end("done")
                job.current[:] = [c for c in job.current if not c.done.is_set()]
        except WorkerClosedError as exc:  # the worker closed under us: the server is stopping
            for item in job.items:
                if item.status in ("queued", "running"):
                    item.end("cancelled", str(exc))
        finally:
            for item in job.items:
                if item.status in ("queued", "running"):
                    item.end("cancelled")
            job.current = []
            job.finished.set()
            with self._lock:
                self._threads.pop(job.id, None)

    def queued_items(self) -> int:
        """Items of running jobs handed to the worker and not yet taken up by it."""
        jobs = list(self._jobs.values())
        return sum(1 for j in jobs for cur in list(j.current) if not cur.started.is_set())

    def get(self, job_id: str) -> BatchJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id!r}")
        return job

    def cancel(self, job_id: str) -> BatchJob:
        job = self.get(job_id)
        if not job.finished.is_set():
            job.cancelled.set()
            for current in list(job.current):
                current.cancel()
        return job

    def cancel_all(self) -> None:
        with self._lock:
            ids = list(self._jobs)
        for job_id in ids:
            self.cancel(job_id)

    def counts(self) -> dict[str, int]:
        with self._lock:
            jobs = list(self._jobs.values())
        return {"running": sum(not j.finished.is_set() for j in jobs), "kept": len(jobs)}

    def _forget_old(self) -> None:
        with self._lock:
            finished = [j for j in self._jobs.values() if j.finished.is_set()]
            extra = len(self._jobs) - self.gateway.limits.max_kept_jobs
            gone = finished[: max(0, extra)]
            for job in gone:
                del self._jobs[job.id]
        for job in gone:
            shutil.rmtree(job.folder, ignore_errors=True)

    def close(self, timeout: float = 10.0) -> None:
        """Stop every job (each cancels its items in the worker), join its thread, remove the files."""
        self._stop.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.request_stop()
        self.cancel_all()
        for thread in threads:
            thread.join(timeout)
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
