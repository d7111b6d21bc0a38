"""The synthesis worker: one thread drives the engine, every job is served in turns, errors reach the caller."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

from speakcli.engines.base import SynthesisOptions
from speakcli.errors import SynthesisError, WorkerClosedError
from speakcli.scheduling import BACKGROUND_EVERY, CallTask, Priority, SpeechTask
from speakcli.service import utterance
from speakcli.ssml import plain
from speakcli.testing import FakeEngine
from speakcli.worker import Job, SynthesisWorker


def recording_engine(delay: float = 0.0) -> FakeEngine:
    """A fake engine that splits text at 40 characters and fails on 'boom'."""
    return FakeEngine(delay, max_chars=40, failures={"boom": lambda: SynthesisError("boom"), "CRASH": _crash})


def _crash() -> BaseException:
    return ZeroDivisionError("the library divided by zero")


def speech(text: str, priority: Priority = Priority.INTERACTIVE, pause: float = 0.0) -> SpeechTask:
    return SpeechTask(plain(text), None, SynthesisOptions(pause=pause), priority)


def sentences(prefix: str, n: int) -> str:
    return " ".join(f"{prefix} part {i} ends." for i in range(n))


@contextmanager
def held(worker: SynthesisWorker) -> Iterator[None]:
    """Keep the worker busy on a call while the block submits jobs, so it takes them all in at once."""
    gate, running = threading.Event(), threading.Event()

    def hold(engine: Any) -> None:
        running.set()
        gate.wait(30)

    job: Job[Any] = worker.submit(CallTask(hold))
    assert running.wait(30)
    try:
        yield
    finally:
        gate.set()
        list(job)


def test_jobs_from_many_threads_run_on_one_thread_without_overlap() -> None:
    engine = recording_engine(delay=0.002)
    worker = SynthesisWorker(engine)
    results: dict[int, int] = {}

    def front_end(n: int) -> None:
        job = worker.submit(speech(f"line {n}."))
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


def test_one_sentence_jobs_are_served_in_submission_order() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    jobs = [worker.submit(speech(f"item {i}")) for i in range(50)]
    for job in jobs:
        list(job)
    worker.close()
    assert engine.texts == [f"item {i}" for i in range(50)]


def test_a_short_job_is_served_right_after_the_step_in_progress() -> None:
    """Not after the whole long job: the sentence being made finishes, then the newcomer's comes."""
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    engine.gate.clear()  # the long job's first sentence is held in the engine
    long = worker.submit(speech(sentences("Long", 20)))
    assert engine.started.wait(5)
    short = worker.submit(speech("Short one."))
    engine.gate.set()
    assert sum(len(c) for c in short) == len("Short one.")
    list(long)
    worker.close()
    assert engine.texts[:3] == ["Long part 0 ends.", "Short one.", "Long part 1 ends."]


def test_jobs_take_turns_and_each_gets_exactly_its_own_audio() -> None:
    """Eight jobs at once, two cancelled part way: each of the others gets the audio it gets alone, in order."""
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    texts = [sentences(f"Job{n} says", 3 + n) for n in range(8)]
    with held(worker):
        jobs = [worker.submit(speech(t, pause=0.05)) for t in texts]
    got: dict[int, list[np.ndarray]] = {}

    def consume(n: int) -> None:
        got[n] = []
        for chunk in jobs[n]:
            got[n].append(chunk)
            if n in (2, 5) and len(got[n]) == 2:
                jobs[n].cancel()
                break

    threads = [threading.Thread(target=consume, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    worker.close()
    alone = FakeEngine(max_chars=40)
    for n, text in enumerate(texts):
        if n in (2, 5):
            assert jobs[n].done.is_set() and len(got[n]) == 2
            continue
        want = list(utterance(alone, text, None, SynthesisOptions(pause=0.05)))
        assert len(got[n]) == len(want) and all(np.array_equal(a, b) for a, b in zip(got[n], want, strict=True))
    # taken in turns, not one job to its end after another
    firsts = [engine.texts.index(f"Job{n} says part 0 ends.") for n in range(8)]
    assert firsts == list(range(8))
    assert all(
        f"Job{n} says part {3 + n - 1} ends." not in engine.texts for n in (2, 5)
    )  # cancelled: their last never made


def test_interactive_work_goes_first_and_background_work_still_moves() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    with held(worker):
        background = worker.submit(speech(sentences("Back", 20), Priority.BACKGROUND))
        chats = [worker.submit(speech(sentences(f"Chat{n}", 20))) for n in range(2)]
    for job in [*chats, background]:
        list(job)
    worker.close()
    window = engine.texts[: 8 * BACKGROUND_EVERY]
    served = sum(t.startswith("Back") for t in window)
    assert 8 - 1 <= served <= 8 + 1  # one turn in BACKGROUND_EVERY: a share, not a stop and not an equal share
    last_chat = max(i for i, t in enumerate(engine.texts) if t.startswith("Chat"))
    assert last_chat < engine.texts.index("Back part 19 ends.")


def test_an_error_reaches_the_caller_and_the_worker_lives_on() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    with pytest.raises(SynthesisError, match="boom"):
        list(worker.submit(speech("boom")))
    assert worker.call(lambda e: "still here") == "still here"
    worker.close()
    assert not worker.alive


def test_an_engine_crash_is_a_synthesis_failure_of_that_job_alone() -> None:
    """A library's own exception is reported as this text's synthesis failure (exit 7, HTTP 500, a Wyoming
    error), naming what it raised; the other jobs go on."""
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    with held(worker):
        bad = worker.submit(speech("One. CRASH here. Three."))
        good = worker.submit(speech(sentences("Fine", 4)))
    with pytest.raises(SynthesisError, match="ZeroDivisionError: the library divided by zero") as caught:
        list(bad)
    assert isinstance(caught.value.__cause__, ZeroDivisionError)
    alone = utterance(recording_engine(), sentences("Fine", 4), None, SynthesisOptions(pause=0.0))
    assert np.array_equal(np.concatenate(list(good)), np.concatenate(list(alone)))  # all 4 sentences, as alone
    worker.close()


def test_utterance_pauses_between_sentences_and_fades_edges() -> None:
    engine = recording_engine()
    opts = SynthesisOptions(pause=0.1)
    audio = np.concatenate(list(utterance(engine, "One two. Three four five.", None, opts)))
    assert engine.texts == ["One two.", "Three four five."]
    assert len(audio) == 8 + 100 + 16  # a sentence, the pause, a sentence
    assert np.all(audio[8:108] == 0) and audio[:8].any() and audio[108:].any()
    assert audio[0] == 0.0 and audio[7] == 0.0 and audio[108] == 0.0 and audio[-1] == 0.0  # each sentence faded


def test_a_consumer_that_stops_early_cancels_the_rest() -> None:
    engine = recording_engine(delay=0.01)
    worker = SynthesisWorker(engine)
    job = worker.submit(speech(sentences("Sentence", 30)))
    for _ in job:
        break
    assert job.done.wait(5)
    worker.close()
    assert len(engine.texts) < 30


def test_close_fails_unfinished_jobs_instead_of_hanging() -> None:
    engine = recording_engine(delay=0.2)
    worker = SynthesisWorker(engine)
    engine.gate.clear()
    first = worker.submit(speech("slow"))
    assert engine.started.wait(5)
    queued = worker.submit(speech("never"))
    closer = threading.Thread(target=worker.close, kwargs={"timeout": 5})
    closer.start()
    engine.gate.set()
    closer.join(10)
    assert len(list(first)) == 1  # the step in progress ends whole
    with pytest.raises(WorkerClosedError, match="closed"):
        list(queued)
    assert "never" not in engine.texts


def test_the_state_report_counts_jobs_by_class() -> None:
    engine = recording_engine()
    worker = SynthesisWorker(engine)
    with held(worker):
        jobs = [
            worker.submit(speech("a.", Priority.BACKGROUND)),
            worker.submit(speech("b.")),
            worker.submit(speech("c.")),
        ]
        state = worker.state()
    assert (state.interactive + state.background, state.max_batch) == (3, 1)  # not yet taken in: all counted waiting
    for job in jobs:
        list(job)
    after = worker.state()
    worker.close()
    assert (after.interactive, after.background, after.calls) == (0, 0, 0)
