"""Servers run together on one event loop until a signal: each started in turn, all asked to stop, all awaited."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class Server(Protocol):
    """A front end `serve` runs over the gateway (HTTP, Wyoming): served on the running loop until asked to stop."""

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve until `request_stop()`; call `ready()` once listening. Raises (a UsageError) if it cannot listen."""
        ...

    def request_stop(self, force: bool = False) -> None:
        """Stop taking requests; what is being made ends after its step (`force`: without waiting). Returns at once."""
        ...


async def run_until_signal(
    servers: Sequence[Server],
    ready: Sequence[Callable[[], None]],
    handling: Callable[[], None] = lambda: None,
) -> None:
    """Run `servers` on this loop, each started once the one before it listens (its `ready` then called), until
    SIGTERM (return) or Ctrl-C (KeyboardInterrupt, after the same stop), or until one of them ends by itself.

    Stopping asks every server to stop (each cancels its jobs, so open streams end after their sentence) and
    waits for all of them; a second signal forces them, without waiting for open responses. `handling()` is called
    once this function has taken the signals over. A server that failed to start is the error raised.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    received: list[int] = []

    def on_signal(signum: int, frame: Any) -> None:
        received.append(signum)
        loop.call_soon_threadsafe(stop.set)
        if len(received) > 1:
            for server in servers:
                loop.call_soon_threadsafe(server.request_stop, True)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    handling()
    tasks: list[asyncio.Task[None]] = []
    try:
        for server, on_ready in zip(servers, ready, strict=True):
            listening = asyncio.Event()

            def started(on_ready: Callable[[], None] = on_ready, listening: asyncio.Event = listening) -> None:
                listening.set()
                on_ready()

            task = asyncio.create_task(server.run(started))
            tasks.append(task)
            waiting = [asyncio.ensure_future(listening.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait([*waiting, task], return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiting:
                waiter.cancel()
            if task.done() or stop.is_set():
                break  # it could not start (its error is raised below), or a signal came while it started
        waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(stop.wait()), *tasks]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        waits[0].cancel()
    finally:
        for server in reversed(servers):
            server.request_stop()
        results = await asyncio.gather(*reversed(tasks), return_exceptions=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    if signal.SIGINT in received:
        raise KeyboardInterrupt
