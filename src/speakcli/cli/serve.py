"""`speakcli serve`: the HTTP API (speakcli's, OpenAI's, xtts-api-server's) and Wyoming, on the one worker."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from speakcli.cli import options as o

if TYPE_CHECKING:  # imported lazily: `speakcli --help` must not load the servers
    pass

EXAMPLES = """
speakcli serve                                  # on http://127.0.0.1:8020
speakcli serve --engine piper --port 0          # the bundled voice, on any free port
speakcli serve --host 0.0.0.0 --api-key KEY     # reachable from other machines, with a key
speakcli serve --cors https://chat.example.org  # and pages from that site (loopback pages always may)
speakcli serve --wyoming tcp://0.0.0.0:10200    # and Wyoming, for Home Assistant (no auth)
"""


def serve(
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", envvar="SPEAKCLI_HOST", help="Address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="N", envvar="SPEAKCLI_PORT", min=0, max=65535, help="Port (0: any free).")
    ] = 8020,
    max_queue: Annotated[
        int,
        typer.Option(
            "--max-queue", metavar="N", min=1, envvar="SPEAKCLI_MAX_QUEUE", help="Requests that may wait; more get 503."
        ),
    ] = 32,
    max_text: Annotated[
        int, typer.Option("--max-text", metavar="N", min=1, help="Most characters of text in one request.")
    ] = 4096,
    api_key: Annotated[
        str | None,
        typer.Option(
            "--api-key",
            metavar="KEY",
            envvar="SPEAKCLI_API_KEY",
            help="Require 'Authorization: Bearer KEY' to speak, clone and run jobs (the listings need none).",
            show_default=False,
        ),
    ] = None,
    private_lists: Annotated[
        bool, typer.Option("--private-lists", help="With --api-key, the voice, model and language lists need it too.")
    ] = False,
    cors: Annotated[
        list[str] | None,
        typer.Option(
            "--cors",
            metavar="ORIGIN",
            help="Also allow browser pages from ORIGIN, as https://host[:port] (repeat; '*' for any). "
            "Pages on localhost, 127.x.x.x and [::1] always may.",
        ),
    ] = None,
    wyoming: Annotated[
        str | None,
        typer.Option(
            "--wyoming",
            metavar="URI",
            envvar="SPEAKCLI_WYOMING",
            help="Also serve Wyoming (Home Assistant) on URI: tcp://HOST:PORT (port 0: any free) or unix://PATH.",
            show_default=False,
        ),
    ] = None,
    no_http: Annotated[bool, typer.Option("--no-http", help="Serve only Wyoming (needs --wyoming).")] = False,
    voice: o.Voice = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    max_batch: o.MaxBatch = None,
    voices_dir: o.VoicesDir = None,
    verbatim: o.Verbatim = None,
    actions: o.Actions = None,
    lexicon: o.Lexicon = None,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Serve speech over HTTP and/or Wyoming until Ctrl-C or SIGTERM; every request goes through one worker."""
    start = _StartSignals(quiet)  # from here on, SIGTERM stops with 0 whatever the moment
    from speakcli.errors import UsageError
    from speakcli.settings import load_settings

    settings = load_settings(
        {
            **o.engine_flags(engine, model_dir, device, voices_dir, precision),
            "voice": voice,
            "language": language,
            "max_batch": max_batch,
            **o.text_flags(verbatim, actions, lexicon),
        }
    )
    if no_http and not wyoming:
        raise UsageError("--no-http leaves nothing to serve; add --wyoming tcp://127.0.0.1:10200")
    if private_lists and not api_key:
        raise UsageError("--private-lists keeps the lists behind the API key; add --api-key KEY")
    address = None
    if wyoming:
        from speakcli.wyoming_api.address import parse_address

        address = parse_address(wyoming)
    _check_extras(http=not no_http, wyoming=address is not None)
    from speakcli.adverts import Advert, advertise, new_secret, withdraw
    from speakcli.cli.scope import open_service
    from speakcli.serving import Gateway, Limits
    from speakcli.serving.net import is_loopback

    service = open_service(settings)
    adverts: list[Path] = []
    gateway = Gateway(service, Limits(max_queue=max_queue, max_text=max_text))
    try:
        http = None
        # On loopback, a one-off `say` on this machine may use this server: it proves itself with this secret.
        secret = new_secret() if is_loopback(host) and not no_http else None
        if not no_http:
            from speakcli.web.server import HttpServer

            http = HttpServer(gateway, host, port, api_key, cors or (), identity=secret, private_lists=private_lists)
            http.listen()  # a port in use is refused now, not after the model has loaded
            if not is_loopback(host) and not api_key:
                _warn(f"listening on {host} without --api-key: anyone who can reach it can use it")
            if not is_loopback(host) and "*" in (cors or ()):
                _warn(f"listening on {host} with --cors '*': any web page a visitor opens can call it")
        wyoming_server = None
        if wyoming and address is not None:
            from speakcli.wyoming_api.server import WyomingServer

            wyoming_server = WyomingServer(gateway, wyoming)
            if address.scheme == "tcp" and not is_loopback(address.host):
                _warn(f"Wyoming on {address.host} has no authentication: anyone who can reach it can use it")
        if not quiet:
            print(f"speakcli: loading {service.spec.note}...", file=sys.stderr, flush=True)
        service.load()  # the model now, not on the first request

        def listening() -> None:
            assert http is not None
            if secret is not None:  # a one-off `say` on this machine may now use this server's model
                advert = Advert.of(
                    http.url,
                    service.spec,
                    settings,
                    auth=bool(api_key),
                    secret=secret,
                    max_text=max_text,
                    text=service.speakable.identity,
                )
                try:
                    adverts.append(advertise(advert))
                except OSError as exc:
                    _warn(f"cannot advertise to say ({exc})")
            _say(quiet, f"serving on {http.url} (Ctrl-C to stop)")

        import asyncio  # here, not at the top: every CLI command imports this module

        from speakcli.serving.runner import Server, run_until_signal

        servers: list[Server] = []
        ready: list[Callable[[], None]] = []
        if wyoming_server is not None:
            servers.append(wyoming_server)
            suffix = "" if http else " (Ctrl-C to stop)"
            ready.append(lambda: _say(quiet, f"serving Wyoming on {wyoming_server.uri}{suffix}"))
        if http is not None:
            servers.append(http)
            ready.append(listening)
        asyncio.run(run_until_signal(servers, ready, start.over))
    finally:
        start.over()
        for path in adverts:
            withdraw(path)
        gateway.close()
    if not quiet:
        print("speakcli: stopped", file=sys.stderr)


def _check_extras(http: bool, wyoming: bool) -> None:
    from speakcli.errors import UsageError

    try:
        if http:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
    except ImportError:
        raise UsageError("serve needs the server extra: pip install 'speakcli[serve]' (or pass --no-http)") from None
    try:
        if wyoming:
            import wyoming as _wyoming  # noqa: F401
    except ImportError:
        raise UsageError("--wyoming needs the wyoming extra: pip install 'speakcli[wyoming]'") from None


def _say(quiet: bool, message: str) -> None:
    if not quiet:
        print(f"speakcli: {message}", file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    print(f"speakcli: warning: {message}", file=sys.stderr)


class _StartSignals:
    """SIGTERM and Ctrl-C while `serve` starts (and after its servers ran); `_serve_until_signal` handles them between.

    While starting, the model may be loading on the worker thread, in native code that cannot be interrupted; an
    ordinary exit then tears that thread down mid-call at interpreter shutdown, and libtorch aborts ("terminate
    called without an active exception", status 134). So a signal ends the process at once: SIGTERM with 0,
    Ctrl-C with 130. Nothing is held yet that needs undoing (no request taken, no advert written). Once the
    servers have run, their stop is under way and bounded, and a repeated signal is ignored.
    """

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self._starting = True
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_signal)

    def over(self) -> None:
        """Start-up is over: from now on a signal here is one more during a stop, and is ignored."""
        self._starting = False

    def _on_signal(self, signum: int, frame: object) -> None:
        if not self._starting:
            return
        if signum == signal.SIGTERM:
            _exit_now(0, None if self.quiet else "stopped")
        _exit_now(130, "interrupted")


def _exit_now(status: int, message: str | None) -> NoReturn:
    """End the process now, after what was printed, without interpreter shutdown (see `_StartSignals`)."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # the signal may have come while the main thread wrote there
            stream.flush()
    if message is not None:
        with contextlib.suppress(OSError):
            os.write(2, f"speakcli: {message}\n".encode())
    os._exit(status)
