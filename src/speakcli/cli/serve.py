"""`speakcli serve`: the HTTP API (speakcli's, OpenAI's speech API, xtts-api-server's) on the one worker."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from speakcli.cli import options as o

EXAMPLES = """
speakcli serve                                  # on http://127.0.0.1:8020
speakcli serve --engine piper --port 0          # the bundled voice, on any free port
speakcli serve --host 0.0.0.0 --api-key KEY     # reachable from other machines, with a key
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
            "--max-queue", metavar="N", min=0, envvar="SPEAKCLI_MAX_QUEUE", help="Requests that may wait; more get 503."
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
            help="Require 'Authorization: Bearer KEY' on every route but /v1/health.",
            show_default=False,
        ),
    ] = None,
    cors: Annotated[
        list[str] | None,
        typer.Option("--cors", metavar="ORIGIN", help="Allow browser pages from ORIGIN (repeat; '*' for any)."),
    ] = None,
    voice: o.Voice = None,
    language: o.Language = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    voices_dir: o.VoicesDir = None,
    quiet: o.Quiet = False,
    debug: o.Debug = False,
) -> None:
    """Serve speech over HTTP until Ctrl-C or SIGTERM; every request goes through one synthesis worker."""
    from speakcli.settings import load_settings

    settings = load_settings(
        {**o.engine_flags(engine, model_dir, device, voices_dir, precision), "voice": voice, "language": language}
    )
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        from speakcli.errors import UsageError

        raise UsageError("serve needs the server extra: pip install 'speakcli[serve]'") from None
    from speakcli.cli.scope import open_service
    from speakcli.remote import Advert, advertise, withdraw
    from speakcli.serving import Gateway, Limits
    from speakcli.web.server import HttpServer, is_loopback

    # SIGTERM is how service managers stop a server: end with 0 (also while the model loads). uvicorn restores
    # this handler after its own graceful shutdown and raises the signal again, which lands here.
    signal.signal(signal.SIGTERM, _exit_quietly)
    service = open_service(settings)
    adverts: list[Path] = []
    gateway = Gateway(service, Limits(max_queue=max_queue, max_text=max_text))
    try:
        server = HttpServer(gateway, host, port, api_key, cors or ())
        if not is_loopback(host) and not api_key:
            print(
                f"speakcli: warning: listening on {host} without --api-key: anyone who can reach it can use it",
                file=sys.stderr,
            )
        if not quiet:
            print(f"speakcli: loading {service.spec.note}...", file=sys.stderr, flush=True)
        service.worker.call(lambda engine: None)  # load the model now, not on the first request

        def listening() -> None:
            if is_loopback(host):  # a one-off `say` on this machine may now use this server's model
                try:
                    adverts.append(advertise(Advert.of(server.url, service.spec, settings, bool(api_key))))
                except OSError as exc:
                    print(f"speakcli: warning: cannot advertise to say ({exc})", file=sys.stderr)
            if not quiet:
                print(f"speakcli: serving on {server.url} (Ctrl-C to stop)", file=sys.stderr, flush=True)

        server.run(listening)
    except SystemExit as exc:  # SIGTERM (see _exit_quietly): a normal stop
        if exc.code not in (0, None):
            raise
    finally:
        for path in adverts:
            withdraw(path)
        gateway.close()
    if not quiet:
        print("speakcli: stopped", file=sys.stderr)


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)
