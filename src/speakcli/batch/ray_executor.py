"""`RayExecutor`: a batch's items made by a Ray Data actor pool, one service per actor; the only module importing ray."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import pickle
import signal
import socket
import sys
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from speakcli.batch.executor import Task, finish_item, settled, start_item
from speakcli.batch.manifest import Result, result_for
from speakcli.engines import EngineSpec
from speakcli.errors import ModelError, SpeakError, UnwritableError, UsageError
from speakcli.settings import Settings

if TYPE_CHECKING:
    from speakcli.engines.base import Voice
    from speakcli.service import SpeechService

INSTALL = "pip install 'speakcli[ray]'"
# Only small pickled tasks and JSON results travel through the object store: a local Ray needs little of it.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024**2
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run: a cluster's address (None: a local Ray for this run) and the actor pool."""

    address: str | None = None
    workers: int = 1
    # Below 1 so the pool never holds every CPU a small machine has: Ray Data's own tasks need one to run.
    cpus_per_worker: float = 0.5
    gpus_per_worker: float = 0.0
    # A task whose worker process dies is tried again on a restarted worker this many times, then fails alone.
    task_retries: int = 1

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise UsageError(f"workers {self.workers} is out of range; use 1 or more")
        if self.cpus_per_worker <= 0:
            raise UsageError(f"CPUs per worker {self.cpus_per_worker} is out of range; use a value above 0")
        if self.gpus_per_worker < 0:
            raise UsageError(f"GPUs per worker {self.gpus_per_worker} is out of range; use 0 or more")


def import_ray() -> ModuleType:
    """Ray with Ray Data, or a usage error saying how to install it."""
    try:
        import ray
        import ray.data  # the actor pool lives here; ray[data] pulls its pyarrow and pandas
    except ImportError as exc:
        raise UsageError(f"the ray executor needs Ray Data ({exc}); {INSTALL}") from None
    return ray


class ItemMaker:
    """One Ray actor: builds its SpeechService (and loads the model) once, then makes each task it is handed,
    writing the item's file itself, atomically, into the output folder (which every node must reach)."""

    def __init__(self, spec: EngineSpec, settings: Settings, out_dir: str) -> None:
        from speakcli.service import SpeechService

        self.service = SpeechService(settings, spec)
        self.service.load()  # now, not with the first item
        self.out_dir = Path(out_dir)
        self.voices: dict[str | None, Voice | None] = {}

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        tasks: list[Task] = [pickle.loads(blob) for blob in batch["task"]]  # the driver's own pickle of plain data
        # Every item of the batch is handed to the worker before any is awaited, so a batching engine steps them
        # together.
        started = [(t, start_item(self.service, t.item, t.settings, self.voices)) for t in tasks if t.settings]
        results = []
        for task, job in started:
            try:
                results.append(finish_item(self.service, task.item, job, self.out_dir))
            except UnwritableError as exc:  # each item fails alone here; only a local run stops at the first
                results.append(result_for(task.item, "failed", error=str(exc)))
        return {"result": [json.dumps(asdict(r)) for r in results]}

    def __del__(self) -> None:
        self.service.close(timeout=1)


class RayExecutor:
    """Makes the tasks that need synthesis on a pool of Ray actors, streaming results back as they finish."""

    def __init__(self, options: RayOptions | None = None) -> None:
        self.options = options or RayOptions()
        self.ray = import_ray()  # now, so a missing extra is reported before any model is loaded
        if self.options.address:
            _check_reachable(self.options.address)  # and an address where no head answers

    def run(
        self,
        service: SpeechService,
        tasks: Sequence[Task],
        out_dir: Path,
        on_result: Callable[[Result], None],
        stop: Callable[[], bool],
    ) -> list[Result]:
        results: list[Result] = []
        todo: list[Task] = []
        for task in tasks:
            result = settled(task)
            if result is None:
                todo.append(task)
            elif not stop():
                results.append(result)
                on_result(result)
        if not todo or stop():
            return results
        # Ray's driver prints what its raylets report (a worker died and its task is retried; a worker's
        # traceback) on stdout, which is the CLI's for --json: dropped while Ray runs. What matters comes back
        # anyway: each item's result says why it failed, and a failed pool raises its worker's error.
        with contextlib.redirect_stdout(io.StringIO()), self._session(), _quiet_ray_data():
            made = self._stream(service, todo, out_dir, results, on_result, stop)
        if not stop():
            # Every task came back, or its block was given up after its worker died `task_retries` + 1 times.
            for task in todo:
                if task.item.index not in made:
                    result = result_for(
                        task.item, "failed", error="the Ray worker making it died or failed, on every try"
                    )
                    results.append(result)
                    on_result(result)
        return results

    def _stream(
        self,
        service: SpeechService,
        todo: list[Task],
        out_dir: Path,
        results: list[Result],
        on_result: Callable[[Result], None],
        stop: Callable[[], bool],
    ) -> set[int]:
        ray, opts = self.ray, self.options
        # One block per item: a result comes back as soon as its item is made, and a dead worker loses one item.
        ds = ray.data.from_items([{"task": pickle.dumps(t)} for t in todo], override_num_blocks=len(todo))
        ctx = ds.context
        ctx.enable_progress_bars = False  # the CLI draws its own
        ctx.print_on_execution_start = False
        ctx.max_errored_blocks = -1  # a task that kept killing its worker fails its item, not the run
        with warnings.catch_warnings():
            # Ray 2.60 deprecates retry limits as free keyword arguments but offers no named ones: without a
            # limit, Ray Data retries forever, so an item that crashes its worker would never end the run.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(
                ItemMaker,
                fn_constructor_args=(service.spec, service.settings, str(out_dir.resolve())),
                # One call in flight per actor: a worker that dies takes only that call's items' retries with it,
                # never a neighbour's queued behind an item that crashes it every time. A call takes as many items
                # as the engine steps together (one where it does not batch).
                compute=ray.data.ActorPoolStrategy(size=opts.workers, max_tasks_in_flight_per_actor=1),
                batch_size=items_at_once(service),
                num_cpus=opts.cpus_per_worker,
                num_gpus=opts.gpus_per_worker,
                max_restarts=-1,  # a worker process that dies is started again (and loads the model again)
                max_task_retries=opts.task_retries,
            )
        made: set[int] = set()
        rows: Iterator[dict[str, Any]] = iter(ds.iter_rows())
        try:
            for row in rows:
                result = Result(**json.loads(row["result"]))
                made.add(result.index)
                results.append(result)
                on_result(result)
                if stop():
                    break
        except ray.exceptions.RayError as exc:
            raise _worker_error(exc) from None
        finally:
            close = getattr(rows, "close", None)
            if close is not None:
                with _signals_held():
                    close()  # stops the pool now: nothing more is started once the caller asked to stop
        return made

    @contextlib.contextmanager
    def _session(self) -> Iterator[None]:
        """Ray for this run: the caller's if it started one, else the cluster at `address`, else a local one."""
        ray, opts = self.ray, self.options
        if ray.is_initialized():
            yield
            return
        quiet = {"log_to_driver": False, "logging_level": logging.ERROR, "configure_logging": True}
        try:
            with _quiet_core(), _signals_held():
                if opts.address:
                    ray.init(address=opts.address, **quiet)
                else:
                    ray.init(include_dashboard=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES, **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = f"the Ray cluster at {opts.address}" if opts.address else "a local Ray"
            # A cluster started with `ray start` checks a token, and a driver joining it by address sends one
            # only when told to: the usual reason a reachable head refuses us.
            auth = (
                "; if the cluster uses token authentication, set RAY_AUTH_MODE=token and give this machine "
                "the cluster's token (~/.ray/auth_token)"
                if opts.address and opts.address != "auto" and "RAY_AUTH_MODE" not in os.environ
                else ""
            )
            raise UsageError(f"cannot start or reach {where} ({' '.join(str(exc).split())}){auth}") from None
        try:
            yield
        finally:
            with _signals_held():
                ray.shutdown()


def items_at_once(service: SpeechService) -> int:
    """Items a Ray worker takes in one call: `max_batch` if set, else 4 for an engine that batches (the smallest
    default XTTS picks), else 1. The driver does not load the model to ask it."""
    if not service.engine.capabilities.batching:
        return 1
    return service.settings.max_batch or 4


def _check_reachable(address: str, timeout: float = 10.0) -> None:
    """Refuse a head that does not answer: Ray itself retries connecting for many minutes, deaf to SIGTERM."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or "://" in address:
        return  # `auto`, or a ray:// client address: Ray resolves it
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise UsageError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start its head with "
            "`ray start --head` there, or pass the address it printed"
        ) from None


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while Ray starts or stops, then hand them to the caller's handlers.

    Raised inside Ray's own cleanup (a `__del__` that joins the pool's thread for up to 2 s), a second Ctrl-C's
    KeyboardInterrupt cannot propagate: Python prints it as a traceback. And `ray.init` sets SIGTERM to
    `sys.exit(15)` while its core adds a C handler that prints a crash banner and aborts, skipping the summary
    and the final manifest: setting the caller's handlers again afterwards replaces both.
    """
    if threading.current_thread() is not threading.main_thread():
        yield  # signals are handled on the main thread only, and Ray sets no handler from another
        return
    missed: list[int] = []
    kept = {sig: signal.signal(sig, lambda signum, frame: missed.append(signum)) for sig in _STOP_SIGNALS}
    try:
        yield
    finally:
        for sig, handler in kept.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        for signum in missed:
            signal.raise_signal(signum)  # runs the caller's handler now, in the caller's code: it may raise


@contextlib.contextmanager
def _quiet_core() -> Iterator[None]:
    """Start Ray with its C++ core logging only fatal errors: it otherwise writes an E-level note per actor on
    stderr (restartable actors whose arguments live in the object store, which Ray Data holds for the pool's
    life). Setting the level makes the core say so, on stderr, once: that line goes to a temp file."""
    saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    if saved is not None:  # the user chose a level: keep it, and what Ray says about it
        yield
        return
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"
    stderr_fd = os.dup(2)
    try:
        with tempfile.TemporaryFile() as sink:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(stderr_fd, 2)
    finally:
        os.close(stderr_fd)
        del os.environ["RAY_BACKEND_LOG_LEVEL"]  # read once by this process's core; Ray's children keep it


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data's own lines (execution started and finished, progress bars off, a worker's traceback) stay out of
    the CLI's output: an error that ends the run comes back to `_stream` as an exception, said in one line."""
    logger = logging.getLogger("ray.data")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _worker_error(exc: BaseException) -> SpeakError:
    """What a failure of the whole pool says (a worker that cannot build its engine: a model folder missing on
    its node): the worker's own error when it is speakcli's, else Ray's first line."""
    found = _speak_error_in(exc)
    if found is not None:
        return found
    first = (str(exc).splitlines() or [""])[0]
    return ModelError(f"the Ray workers could not make items: {' '.join(first.split())[:500]}")


def _speak_error_in(exc: BaseException, depth: int = 0) -> SpeakError | None:
    """The SpeakError inside Ray's wrapping: an actor's death holds its creation task's error in `args`, a task
    error holds the worker's exception in `cause`."""
    if isinstance(exc, SpeakError):
        return exc
    if depth > 5:
        return None
    inner = [getattr(exc, "cause", None), exc.__cause__, *exc.args]
    for e in inner:
        if isinstance(e, BaseException):
            found = _speak_error_in(e, depth + 1)
            if found is not None:
                return found
    return None
