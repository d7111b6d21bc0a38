"""Every thread speakcli starts has one life: start once, a stop event, a join with a deadline, failures kept."""

from __future__ import annotations

import threading

from speakcli.lifecycle import ServiceThread


def test_a_thread_runs_until_asked_to_stop_and_joins() -> None:
    ran = threading.Event()

    def work(stop: threading.Event) -> None:
        ran.set()
        stop.wait(30)

    thread = ServiceThread("speakcli-test-life", work)
    thread.start()
    thread.start()  # a second start does nothing
    assert ran.wait(5) and thread.alive
    assert not thread.join(0.05)  # still running: the deadline passes and says so
    assert thread.stop(5) and not thread.alive and thread.stopping


def test_on_stop_reaches_work_that_waits_on_something_else() -> None:
    import queue

    inbox: queue.Queue[object] = queue.Queue()
    thread = ServiceThread("speakcli-test-life", lambda stop: inbox.get(timeout=30), on_stop=lambda: inbox.put(None))
    thread.start()
    assert thread.stop(5)


def test_a_failure_is_kept_and_reported_not_lost() -> None:
    seen: list[BaseException] = []
    thread = ServiceThread("speakcli-test-life", lambda stop: 1 / 0, on_failure=seen.append)
    thread.start()
    assert thread.join(5)
    assert isinstance(thread.error, ZeroDivisionError) and seen == [thread.error]


def test_a_thread_never_started_joins_at_once() -> None:
    assert ServiceThread("speakcli-test-life", lambda stop: None).stop(0)
