"""The warm-start client: proves a server is the one its advert names, then streams its audio, cut or whole."""

from __future__ import annotations

import http.client
import ipaddress
import json
import secrets
import select
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from speakcli import jsontext
from speakcli.adverts import Advert, proof
from speakcli.errors import StreamCutError
from speakcli.settings import Settings

# Deadlines for a server on this machine. It answers its identity from the event loop at once, busy or not, so a
# server that has not connected or answered by then is stopped, hung or not ours: the run speaks locally.
CONNECT_SECONDS = 1.0
REPLY_SECONDS = 2.0  # to the first byte of an answer the server gives at once (its identity, a probe)
# A request's first audio waits for the queue and the first sentence; while it waits, the server is asked every
# REPLY_SECONDS (on a second connection) to prove it is still alive. WAIT_SECONDS bounds the whole wait.
WAIT_SECONDS = 300.0
STALL_SECONDS = 30.0  # most time between two pieces of a stream once audio flows: a longer silence is a cut

_WAV_HEADER = 44  # the server's streamed WAV: RIFF, one fmt chunk, then data
_MAX_ANSWER = 64 * 1024  # an identity or an error is small; more is not our server


class Unavailable(Exception):
    """The server cannot serve this request as a local run would (gone, stopped, unproven, refusing it, or cut
    before any of its audio went out): speak locally instead."""


@dataclass
class RemoteSource:
    """What output needs to know of where the audio comes from, when that is a server."""

    sample_rate: int
    settings: Settings


class RemoteSpeech:
    """A proven server's streamed audio: iterate it for mono float32 chunks at `sample_rate`.

    The server ends a stream it did not finish (shut down, failed) without its last chunk, so a cut is never taken
    for the end. Iterating then raises `Unavailable` when nothing was handed out yet, or when the caller is
    `buffered` (it keeps every chunk until the end, as a file is written): nothing was lost, speak locally. Once
    audio went out (played, piped), it raises `StreamCutError`.
    """

    def __init__(
        self, url: str, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse, rate: int, buffered: bool
    ) -> None:
        self.url = url
        self.sample_rate = rate
        self.buffered = buffered
        self.delivered = 0  # samples handed out
        self._conn = conn
        self._resp = resp

    def __iter__(self) -> Iterator[np.ndarray]:
        carry = b""
        try:
            while True:
                try:
                    data = self._resp.read1(64 * 1024)
                except (http.client.HTTPException, OSError) as exc:  # IncompleteRead, reset, STALL_SECONDS passed
                    raise self._cut(exc) from None
                if not data:
                    return  # the final chunk came: the server finished
                data = carry + data
                even = len(data) - len(data) % 2
                carry = data[even:]
                if even:
                    chunk = np.frombuffer(data[:even], "<i2").astype(np.float32) / 32767.0
                    self.delivered += len(chunk)
                    yield chunk
        finally:
            self._conn.close()  # an early stop closes the connection: the server cancels the rest

    def _cut(self, exc: BaseException) -> Exception:
        why = type(exc).__name__ if isinstance(exc, http.client.HTTPException) else str(exc) or type(exc).__name__
        if self.buffered or not self.delivered:
            return Unavailable(f"the server's stream was cut ({why})")
        return StreamCutError(
            f"the server stopped after {self.delivered / self.sample_rate:.1f} s of audio; the rest was not spoken"
        )

    def cancel(self) -> None:
        """Stop: closing the connection makes the server cancel the rest."""
        self._conn.close()


def _address(url: str) -> tuple[str, int]:
    # Only ever this machine: an advert that names another host is not a warm start.
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        port = parts.port
    except ValueError:
        loopback, port = False, None
    if parts.scheme != "http" or not loopback or port is None:
        raise Unavailable(f"{url} is not a server on this machine")
    return host, port


def _connect(advert: Advert) -> http.client.HTTPConnection:
    """A connection to the advert's server that has proven it knows the advert's secret; else `Unavailable`."""
    host, port = _address(advert.url)
    conn = http.client.HTTPConnection(host, port, timeout=CONNECT_SECONDS)
    try:
        conn.connect()
        assert conn.sock is not None
        conn.sock.settimeout(REPLY_SECONDS)
        nonce = secrets.token_hex(16)
        conn.request("GET", f"/v1/identity?nonce={nonce}")
        resp = conn.getresponse()
        body = resp.read(_MAX_ANSWER + 1)
        if resp.status != 200 or len(body) > _MAX_ANSWER or not resp.isclosed():
            raise Unavailable(f"the server at {advert.url} did not prove its identity ({resp.status})")
        given = jsontext.loads(body).get("proof")
        if not isinstance(given, str) or not secrets.compare_digest(given, proof(advert.secret, nonce)):
            raise Unavailable(f"the server at {advert.url} is not the one its advert names")
    except (OSError, http.client.HTTPException, ValueError, AttributeError) as exc:
        conn.close()
        raise Unavailable(f"the server at {advert.url} did not answer in time ({exc})") from None
    except Unavailable:
        conn.close()
        raise
    return conn


def _await_answer(conn: http.client.HTTPConnection, advert: Advert) -> None:
    """Wait for the first byte of the answer, as long as the server keeps proving it is alive; else `Unavailable`."""
    assert conn.sock is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        ready, _, _ = select.select([conn.sock], [], [], REPLY_SECONDS)
        if ready:
            return
        if time.monotonic() > deadline:
            raise Unavailable(f"the server at {advert.url} gave no audio in {WAIT_SECONDS:.0f} s")
        _connect(advert).close()  # stopped (SIGSTOP) or hung: it cannot prove itself in time


def _read_header(resp: http.client.HTTPResponse) -> int:
    """The sample rate of the server's streamed 16-bit mono WAV, from its header."""
    header = resp.read(_WAV_HEADER)
    if len(header) < _WAV_HEADER or header[:4] != b"RIFF" or header[8:16] != b"WAVEfmt ":
        raise ValueError("the server sent no WAV header")
    fmt, channels, rate = struct.unpack("<HHI", header[20:28])
    bits = struct.unpack("<H", header[34:36])[0]
    if (fmt, channels, bits) != (1, 1, 16) or header[36:40] != b"data":
        raise ValueError("the server's WAV is not 16-bit mono PCM")
    return int(rate)


def open_speech(
    advert: Advert, text: str, settings: Settings, api_key: str | None, *, buffered: bool = False
) -> RemoteSpeech:
    """`text` streamed from the advert's server, spoken with `settings`' voice, language, speed and temperature.

    Nothing (neither text nor key) is sent before the server proved its identity. Raises `Unavailable` when the
    server cannot be reached in time, or answers anything but audio (busy, refused, a wrong key): the caller speaks
    locally, as it would have without a server. `buffered`: see `RemoteSpeech`.
    """
    conn = _connect(advert)
    body: dict[str, Any] = {
        "text": text,
        "voice": settings.voice,
        "language": settings.language,
        "speed": settings.speed,
        "temperature": settings.temperature,
        "seed": settings.seed,
        "stream": True,
        "format": "wav",
    }
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn.request("POST", "/v1/synthesize", json.dumps(body), headers)
        _await_answer(conn, advert)
        assert conn.sock is not None
        conn.sock.settimeout(STALL_SECONDS)
        resp = conn.getresponse()
        if resp.status != 200:
            resp.read(_MAX_ANSWER)
            raise Unavailable(f"the server refused the request ({resp.status})")
        if not resp.chunked:  # without chunks, a closed connection would look like the end
            raise Unavailable("the server's answer cannot tell a cut from the end")
        rate = _read_header(resp)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        conn.close()
        raise Unavailable(f"the server at {advert.url} failed to answer ({exc})") from None
    except Unavailable:
        conn.close()
        raise
    return RemoteSpeech(advert.url, conn, resp, rate, buffered)


def server_info(advert: Advert, api_key: str | None) -> dict[str, Any]:
    """The proven server's `/v1/info` report (its scheduler, queue, served); `Unavailable` when it cannot be had."""
    conn = _connect(advert)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        conn.request("GET", "/v1/info", headers=headers)
        resp = conn.getresponse()
        body = resp.read(_MAX_ANSWER + 1)
        if resp.status != 200 or len(body) > _MAX_ANSWER:
            raise Unavailable(f"the server did not report ({resp.status})")
        report = jsontext.loads(body)
        if not isinstance(report, dict):
            raise ValueError("not a JSON object")
        return report
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise Unavailable(f"the server at {advert.url} did not report ({exc})") from None
    finally:
        conn.close()
