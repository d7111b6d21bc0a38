"""The HTTP server's lifecycle: uvicorn over the app, in the foreground (signals) or on a thread (start, stop, join)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn

from speakcli.serving import Gateway
from speakcli.web.app import create_app

log = logging.getLogger("speakcli")


def is_loopback(host: str) -> bool:
    """Whether `host` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Uvicorn(uvicorn.Server):
    """uvicorn that, on SIGTERM or Ctrl-C, first cancels every job so open streams end after their sentence."""

    def __init__(self, config: uvicorn.Config, gateway: Gateway) -> None:
        super().__init__(config)
        self.gateway = gateway
        self.on_listening: Callable[[], None] | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.on_listening is not None:
            self.on_listening()

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.gateway.stop_accepting()
        super().handle_exit(sig, frame)


class HttpServer:
    """One uvicorn server for one gateway. `run()` blocks (the CLI); `start()`/`stop()` run it on a thread."""

    def __init__(
        self,
        gateway: Gateway,
        host: str = "127.0.0.1",
        port: int = 8020,
        api_key: str | None = None,
        cors: Sequence[str] = (),
    ) -> None:
        self.gateway = gateway
        self.app = create_app(gateway, api_key, cors)
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
        self._server = _Uvicorn(config, gateway)
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

    def run(self, on_listening: Callable[[], None] | None = None) -> None:
        """Serve until SIGTERM or Ctrl-C (uvicorn's own handlers, main thread only)."""
        self._server.on_listening = on_listening
        self._server.run()

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
        self.gateway.stop_accepting()
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
