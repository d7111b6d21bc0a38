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
from speakcli.serving import Gateway
from speakcli.serving.net import is_loopback
from speakcli.web.app import create_app
from speakcli.web.deadlines import Timeouts, deadline_protocol

log = logging.getLogger("speakcli")

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


def bind(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening TCP socket on host:port, or a `UsageError` saying why not (a port in use, an unknown host)."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        return socket.create_server(address, family=family, backlog=backlog)
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on {where}: {exc.strerror}; pick another --host") from None
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot listen on {where}: {reason}; pick another --port or --host") from None


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
    ) -> None:
        self.gateway = gateway
        self.app = create_app(gateway, api_key, cors)
        timeouts = timeouts or Timeouts()
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            http=deadline_protocol(timeouts),
            ws="none",
            timeout_keep_alive=timeouts.keep_alive,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Streams are cancelled at shutdown; this bounds the wait for a client that reads nothing.
            timeout_graceful_shutdown=5,
        )
        self._server = _Uvicorn(config)
        self._socket: socket.socket | None = None
        self._thread: threading.Thread | None = None

    def listen(self) -> None:
        """Take the address now (idempotent); raises `UsageError` when it cannot be had."""
        if self._socket is None:
            self._socket = bind(self._server.config.host, self._server.config.port, self._server.config.backlog)

    def _sockets(self) -> list[socket.socket]:
        self.listen()
        assert self._socket is not None
        return [self._socket]

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose for port 0); valid once listening."""
        if self._socket is not None and self._socket.fileno() >= 0:
            return int(self._socket.getsockname()[1])
        for server in getattr(self._server, "servers", ()):
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        return int(self._server.config.port)

    @property
    def url(self) -> str:
        host = self._server.config.host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{self.port}"

    async def serve(self, on_listening: Callable[[], None] | None = None) -> None:
        """Serve on the running event loop until `request_stop()`; the caller handles signals."""
        self._server.on_listening = on_listening
        await self._server.serve(self._sockets())

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
        sockets = self._sockets()
        self._thread = threading.Thread(target=self._server.run, args=(sockets,), name="speakcli-http", daemon=True)
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(timeout / 0.02)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.02)
        if not self._server.started:
            raise RuntimeError("the HTTP server did not start")

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, stop listening, join the thread."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
