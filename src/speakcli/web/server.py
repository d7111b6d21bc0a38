"""The HTTP server's lifecycle: uvicorn over the app, on the caller's event loop or on a thread (start, stop, join)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence

import uvicorn

from speakcli.serving import Gateway
from speakcli.serving.net import is_loopback
from speakcli.web.app import create_app
from speakcli.web.guard import UNFINISHED

log = logging.getLogger("speakcli")


def _not_unfinished(record: logging.LogRecord) -> bool:
    return record.msg != UNFINISHED  # the guard cuts such responses on purpose, and logs why itself


__all__ = ["HttpServer", "is_loopback"]


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


class HttpServer:
    """One uvicorn server for one gateway: `serve()` on the caller's loop (the CLI), or `start()`/`stop()` on a thread."""

    def __init__(
        self,
        gateway: Gateway,
        host: str = "127.0.0.1",
        port: int = 8020,
        api_key: str | None = None,
        cors: Sequence[str] = (),
        identity: str | None = None,
    ) -> None:
        self.gateway = gateway
        self.app = create_app(gateway, api_key, cors, identity)
        config = uvicorn.Config(
            self.app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # Streams are cancelled at shutdown; this bounds the wait for a client that reads nothing.
            timeout_graceful_shutdown=5,
        )
        uvicorn_log = logging.getLogger("uvicorn.error")
        if _not_unfinished not in uvicorn_log.filters:
            uvicorn_log.addFilter(_not_unfinished)
        self._server = _Uvicorn(config)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The port it listens on (the one the OS chose for port 0); valid once started."""
        for server in self._server.servers:
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
        await self._server.serve()

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
        self._thread = threading.Thread(target=self._server.run, name="speakcli-http", daemon=True)
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
