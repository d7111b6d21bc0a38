"""The HTTP server's lifecycle: its socket, uvicorn over the app, on the caller's event loop or on a thread."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from speakcli.errors import UsageError
from speakcli.lifecycle import ServiceThread
from speakcli.serving import Gateway
from speakcli.serving.net import is_loopback
from speakcli.web.app import create_app
from speakcli.web.deadlines import Timeouts, deadline_protocol
from speakcli.web.guard import UNFINISHED

log = logging.getLogger("speakcli")


def _not_unfinished(record: logging.LogRecord) -> bool:
    return record.msg != UNFINISHED  # the guard cuts such responses on purpose, and logs why itself


__all__ = ["HttpServer", "Timeouts", "is_loopback"]


class _Uvicorn(uvicorn.Server):
    """uvicorn that leaves signals to its caller: `speakcli serve` stops it and the Wyoming server together."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.on_listening: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_listening is not None:
            self.on_listening()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def bind(host: str, port: int, backlog: int = 2048) -> list[socket.socket]:
    """Listening TCP sockets on every address `host` names (as asyncio binds them), all on one port; or a
    `UsageError` saying why not (a port in use, an unknown host)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {where}: {exc.strerror}; pick another --host") from None
    sockets: list[socket.socket] = []
    try:
        for family, address in dict.fromkeys((f[0], tuple(f[4])) for f in found):
            if sockets:  # port 0: the others take the port the first was given
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            sockets.append(socket.create_server(address, family=family, backlog=backlog))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot listen on {where}: {reason}; pick another --port or --host") from None
    return sockets


class HttpServer:
    """One uvicorn server for one gateway: `serve()` on the caller's loop (the CLI), or `start()`/`stop()` on a thread.

    `listen()` takes the port at once (a port in use is refused before a model loads); serving calls it if needed.
    """

    def __init__(
        self,
        gateway: Gateway,
        host: str = "127.0.0.1",
        port: int = 8020,
        api_key: str | None = None,
        cors: Sequence[str] = (),
        timeouts: Timeouts | None = None,
        identity: str | None = None,
        private_lists: bool = False,
    ) -> None:
        self.gateway = gateway
        self.app = create_app(gateway, api_key, cors, identity, private_lists, loopback_only=is_loopback(host))
        timeouts = timeouts or Timeouts()
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            http=deadline_protocol(timeouts),
            ws="none",
            timeout_keep_alive=timeouts.keep_alive,
            log_level="warning",
            access_log=False,  # never on: a URL may carry the API key (?api_key=KEY)
            lifespan="off",
            # Streams are cancelled at shutdown; this bounds the wait for a client that reads nothing.
            timeout_graceful_shutdown=5,
        )
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _not_unfinished not in uvicorn_log.filters:
            uvicorn_log.addFilter(_not_unfinished)
        self._server = _Uvicorn(config)
        self._sockets: list[socket.socket] = []
        self._port = port
        self._thread: ServiceThread | None = None

    def listen(self) -> None:
        """Take the address now (idempotent); raises `UsageError` when it cannot be had."""
        if not self._sockets:
            config = self._server.config
            self._sockets = bind(config.host, config.port, config.backlog)
            self._port = int(self._sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose for port 0); valid once listening."""
        return self._port

    @property
    def url(self) -> str:
        host = self._server.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def serve(self, on_listening: Callable[[], None] | None = None) -> None:
        """Serve on the running event loop until `request_stop()`; the caller handles signals."""
        self._server.on_listening = on_listening
        self.listen()
        await self._server.serve(self._sockets)

    async def run(self, ready: Callable[[], None]) -> None:
        """`serve(ready)`: the `serving.runner.Server` protocol."""
        await self.serve(ready)

    def request_stop(self, force: bool = False) -> None:
        """Cancel every job, then stop: open responses end after their sentence (`force`: without waiting)."""
        self.gateway.stop_accepting()
        self._server.should_exit = True
        self._server.force_exit = self._server.force_exit or force

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def start(self, timeout: float = 10.0) -> None:
        """Serve on a thread; returns once listening."""
        self.listen()
        self._thread = ServiceThread(
            "speakcli-http", lambda stop: self._server.run(self._sockets), on_stop=self.request_stop
        )
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self._server.started or not self._thread.alive:
                break
            deadline.wait(0.02)
        if not self._server.started:
            raise RuntimeError("the HTTP server did not start")

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, stop listening, join the thread."""
        if self._thread is not None:
            self._thread.stop(timeout)
        else:
            self.request_stop()
        for sock in self._sockets:  # uvicorn closes those it served on; these never were, when it did not start
            sock.close()
