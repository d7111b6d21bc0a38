"""What the route modules share: a request's gateway, and blocking work run off the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request, UploadFile

from speakcli.errors import LimitError
from speakcli.serving import Gateway, Upload

T = TypeVar("T")


def gateway_of(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def run_blocking(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` on a thread of its own, for work that waits on the worker (clone, precompute).

    Not the loop's shared pool: a few clones waiting their turn would use it up and stall the listings. The
    gateway admits only so many, so threads stay few, and each ends with its call.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(value: Any, failed: bool) -> None:
        if not future.done():  # the request may have been cancelled meanwhile
            future.set_exception(value) if failed else future.set_result(value)

    def target() -> None:
        try:
            result = fn(*args)
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, exc, True)
        else:
            loop.call_soon_threadsafe(settle, result, False)

    threading.Thread(target=target, name="speakcli-http-blocking", daemon=True).start()
    return await future


async def read_upload(upload: UploadFile, limit: int) -> Upload:
    """An uploaded clip's bytes, refused past `limit` bytes."""
    data = await upload.read(limit + 1)  # one byte past the limit is enough to refuse it
    if len(data) > limit:
        raise LimitError(f"clip {upload.filename!r} is larger than {limit} bytes")
    return Upload(upload.filename or "", data)
