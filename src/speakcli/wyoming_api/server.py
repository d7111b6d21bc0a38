"""The Wyoming server: listens on TCP or a Unix socket, one `SpeechHandler` per connection, all on one gateway."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable

from speakcli.errors import UsageError
from speakcli.serving import Gateway
from speakcli.wyoming_api.address import Address, parse_address
from speakcli.wyoming_api.handler import SpeechHandler

GRACE_SECONDS = 5.0  # at a stop, how long requests being spoken may take to end (their jobs are cancelled)


class WyomingServer:
    """Serves Wyoming on the running event loop: `await start()`, then `await stop()`."""

    def __init__(self, gateway: Gateway, uri: str) -> None:
        self.gateway = gateway
        self.address: Address = parse_address(uri)
        self._server: asyncio.Server | None = None
        self._handlers: set[SpeechHandler] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._stop_requested: asyncio.Event | None = None

    async def run(self, ready: Callable[[], None]) -> None:
        """Serve until `request_stop()` (the `serving.runner.Server` protocol); `ready()` once listening."""
        self._stop_requested = asyncio.Event()
        await self.start()
        ready()
        await self._stop_requested.wait()
        await self.stop()

    def request_stop(self, force: bool = False) -> None:
        """Stop taking requests and end what is being spoken (`force`: the same; Wyoming has no graceful wait)."""
        self.gateway.stop_accepting()
        if self._stop_requested is not None:
            self._stop_requested.set()

    async def start(self) -> None:
        try:
            if self.address.scheme == "unix":
                self._server = await asyncio.start_unix_server(self._connected, path=self.address.path)
            else:
                self._server = await asyncio.start_server(self._connected, self.address.host, self.address.port)
        except OSError as exc:
            raise UsageError(
                f"cannot listen on {self.address.uri()}: {exc.strerror or exc}; pick another address"
            ) from None

    @property
    def uri(self) -> str:
        """The address it listens on, with the port the OS chose for port 0."""
        if self._server is not None and self.address.scheme == "tcp":
            for sock in self._server.sockets:
                if sock.family in (socket.AF_INET, socket.AF_INET6):
                    return self.address.uri(int(sock.getsockname()[1]))
        return self.address.uri()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = SpeechHandler(reader, writer, self.gateway)
        task = asyncio.current_task()
        self._handlers.add(handler)
        if task is not None:
            self._tasks.add(task)
        try:
            await handler.run()
        finally:
            self._handlers.discard(handler)
            if task is not None:
                self._tasks.discard(task)

    async def stop(self, grace: float = GRACE_SECONDS) -> None:
        """Stop listening, let what is being spoken end (the gateway cancels its jobs), then close every connection."""
        if self._server is not None:
            self._server.close()
        self.gateway.stop_accepting()
        handlers = list(self._handlers)
        for handler in handlers:
            handler.end_requests()
        if handlers:
            waiters = [asyncio.ensure_future(h.idle.wait()) for h in handlers]
            _, late = await asyncio.wait(waiters, timeout=grace)
            for waiter in late:
                waiter.cancel()
        for handler in handlers:
            with contextlib.suppress(ConnectionError):
                await handler.stop()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=grace)
        for task in list(self._tasks):
            task.cancel()
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), grace)
