"""The synthesis worker: one thread drives the engine, jobs run in order, errors reach the caller."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from speakcli.engines.base import SynthesisOptions
from speakcli.errors import SynthesisError, WorkerClosedError
from speakcli.service import utterance
from speakcli.testing import FakeEngine
from speakcli.worker import SynthesisWorker


def recording_engine(delay: float = 0.0) -> FakeEngine:
    """A fake engine that splits text at 40 characters and fails on 'boom'."""
    return FakeEngine(delay, max_chars=40, failures={"boom": lambda: SynthesisError("boom")})


def test_jobs_from_many_threads_run_on_one_thread_without_overlap() -> None:
    engine = recording_engine(delay=0.002)
    worker = SynthesisWorker(engine)
    results: dict[int, int] = {}

    def front_end(n: int) -> None:
        job = worker.submit(lambda e, n=n: utterance(e, f"line {n}.", None, SynthesisOptions(pause=0)))
        results[n] = sum(len(c) for c in job)

    threads = [threading.Thread(target=front_end, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    worker.close()
    assert len(results) == 16 and all(v > 0 for v in results.values())
    assert len(engine.threads) == 1 and threading.get_ident() not in engine.threads
    assert engine.overlaps == 0
    assert worker.jobs_run == 16
    assert engine.loads == 1  # loaded once, lazily, on the worker thread


def test_jobs_run_in_submission_order() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    jobs = [worker.submit(lambda e, i=i: e.synthesize(f"item {i}", None, SynthesisOptions())) for i in range(50)]
    for job in jobs:
        list(job)
    worker.close()
    assert engine.texts == [f"item {i}" for i in range(50)]


def test_an_error_reaches_the_caller_and_the_worker_lives_on() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    with pytest.raises(SynthesisError, match="boom"):
        list(worker.submit(lambda e: e.synthesize("boom", None, SynthesisOptions())))
    assert worker.call(lambda e: "still here") == "still here"
    worker.close()
    assert not worker.alive


def test_utterance_pauses_between_sentences_and_fades_edges() -> None:
    engine = recording_engine()
    opts = SynthesisOptions(pause=0.1)
    chunks = list(utterance(engine, "One two. Three four five.", None, opts))
    assert engine.texts == ["One two.", "Three four five."]
    assert [len(c) for c in chunks] == [8, 100, 16]
    assert np.all(chunks[1] == 0)
    assert chunks[0][0] == 0.0 and chunks[2][-1] == 0.0


def test_a_consumer_that_stops_early_cancels_the_rest() -> None:
    engine = recording_engine(delay=0.01)
    worker = SynthesisWorker(engine)
    text = " ".join(f"Sentence {i}." for i in range(30))
    job = worker.submit(lambda e: utterance(e, text, None, SynthesisOptions(pause=0)))
    for _ in job:
        break
    assert job.done.wait(5)
    worker.close()
    assert len(engine.texts) < 30


def test_close_fails_queued_jobs_instead_of_hanging() -> None:
    engine = recording_engine(delay=0.2)
    worker = SynthesisWorker(engine)
    first = worker.submit(lambda e: e.synthesize("slow", None, SynthesisOptions()))
    queued = worker.submit(lambda e: e.synthesize("never", None, SynthesisOptions()))
    assert engine.started.wait(5)
    worker.close(timeout=5)
    assert len(list(first)) == 1
    with pytest.raises(WorkerClosedError, match="closed"):
        list(queued)
    assert "never" not in engine.texts
