"""The HTTP server's deadlines over raw loopback sockets: late requests and idle connections are closed, nothing else."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from serve_helpers import Served, decode, serving
from speakcli.web.server import Timeouts

pytestmark = pytest.mark.slow

TIMEOUTS = Timeouts(keep_alive=1, head=1.0, body=1.0)
CLOSED_WITHIN = 30.0  # how long a test waits for the server to close (far past every deadline above)
HEAD = b"POST /v1/synthesize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"


@pytest.fixture(scope="module")
def server() -> Iterator[Served]:
    with serving(timeouts=TIMEOUTS) as served:
        yield served


def connect(server: Served) -> socket.socket:
    parts = urlsplit(server.url)
    return socket.create_connection((parts.hostname, parts.port), timeout=CLOSED_WITHIN)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def closed_by_server(sock: socket.socket) -> bool:
    """Read until the server closes (True) or CLOSED_WITHIN passes with the connection still open (False)."""
    try:
        while sock.recv(65536):
            pass
    except TimeoutError:
        return False
    except ConnectionResetError:
        pass
    return True


def trickle(sock: socket.socket, data: bytes, every: float = 0.1) -> float:
    """Send `data` a byte at a time until the server closes; returns the seconds it was held open."""
    started = time.monotonic()
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        time.sleep(every)  # the pace of a slow client, not synchronisation
    else:
        raise AssertionError(f"the server took all {len(data)} trickled bytes without closing")
    return time.monotonic() - started


def test_a_connection_that_sends_nothing_is_closed_after_the_head_deadline(server: Served) -> None:
    started = time.monotonic()
    with connect(server) as sock:
        assert closed_by_server(sock), "an idle new connection stayed open"
    assert time.monotonic() - started >= TIMEOUTS.head


def test_headers_sent_a_byte_at_a_time_are_cut_off(server: Served) -> None:
    with connect(server) as sock:
        sock.sendall(HEAD)
        held = trickle(sock, b"X-Slow: " + b"a" * 300)  # 30 s at this pace: far past the deadline
    assert held >= TIMEOUTS.head * 0.5  # the deadline counts from the connection, which opened a little earlier


def test_a_body_sent_a_byte_at_a_time_is_cut_off_and_its_request_never_runs(server: Served) -> None:
    body = ('{"text": "' + "Slow words. " * 30 + '"}').encode()
    before = len(server.jobs)
    with connect(server) as sock:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode())
        held = trickle(sock, body)
        assert closed_by_server(sock)
    assert held >= TIMEOUTS.body * 0.5
    assert len(server.jobs) == before  # the handler saw a disconnect, not a request


def test_an_idle_connection_after_a_response_is_closed(server: Served) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        reply = b""
        while b'"ok"}' not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"closed before the response: {reply!r}"
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert closed_by_server(sock), "an idle keep-alive connection stayed open"
    assert time.monotonic() - started >= TIMEOUTS.keep_alive * 0.5


def test_requests_in_time_work_and_a_slow_response_is_not_cut(server: Served) -> None:
    with httpx.Client(base_url=server.url, timeout=120) as client:
        for _ in range(3):  # one keep-alive connection, several requests
            assert client.get("/v1/health").json() == {"status": "ok"}
        replies: list[httpx.Response] = []
        with server.worker_held() as gate:
            before = len(server.jobs)
            waiter = threading.Thread(
                target=lambda: replies.append(client.post("/v1/synthesize", json={"text": "Worth the wait."}))
            )
            waiter.start()
            wait_for(lambda: len(server.jobs) > before)
            # The request has arrived and its answer is not ready: no deadline may run out meanwhile.
            time.sleep(2 * max(TIMEOUTS.head, TIMEOUTS.body, TIMEOUTS.keep_alive))
            gate.set()
            waiter.join(60)
    assert replies and replies[0].status_code == 200
    audio, rate = decode(replies[0].content)
    assert len(audio) / rate > 0.5


def test_a_body_that_arrives_in_pieces_within_the_deadline_is_served(server: Served) -> None:
    body = b'{"text": "Pieces in time.", "format": "pcm"}'
    with connect(server) as sock:
        sock.sendall(HEAD + f"Content-Length: {len(body)}\r\n\r\n".encode())
        for i in range(0, len(body), 8):
            sock.sendall(body[i : i + 8])
        reply = b""
        while not reply.startswith(b"HTTP/1.1 200") or b"\r\n\r\n" not in reply:
            chunk = sock.recv(65536)
            assert chunk, f"closed: {reply!r}"
            reply += chunk
