"""The control socket: a Unix socket beside a watch daemon's state file, its server thread, and the client's call.

Only the daemon's own user gets through, checked on both ends: the socket is 0600 in a folder of that user's that
no one else may write to, the server asks the kernel who connected (SO_PEERCRED), and the client refuses a socket
another user owns or could have replaced, and a server run by another user. One JSON object a line each way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import socket
import stat
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from speakcli import jsontext
from speakcli.errors import SpeakError, UnreachableError

log = logging.getLogger("speakcli")

MAX_REQUEST = 4096  # bytes of one command: a command is a word
IO_TIMEOUT = 5.0  # seconds one side waits for the other's line
# Clients being read at once; past it the one waiting longest is let go, so a newcomer (a hotkey) is always read.
MAX_CLIENTS = 8


def socket_path(state_file: Path) -> Path:
    """The control socket of the daemon keeping `state_file`: beside it, named after it."""
    name = state_file.name[: -len(".json")] if state_file.name.endswith(".json") else state_file.name
    return state_file.with_name(name + ".sock")


@contextlib.contextmanager
def _short_path(path: Path) -> Iterator[str]:
    """`path` as a Unix socket address: through the folder's descriptor, since an address holds at most 107 bytes
    and a state folder's path can be longer."""
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _peer_uid(sock: socket.socket) -> int:
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


def private_folder_problem(folder: Path) -> str | None:
    """Why a socket in `folder` could be reached or replaced by another user (None: it cannot)."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        return f"cannot read folder {folder} ({exc.strerror})"
    if st.st_uid != os.geteuid():
        return f"folder {folder} belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o022:
        return f"folder {folder} is writable by other users (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w it)"
    return None


class ControlServer:
    """Answers control commands on the socket (when there is one) and SIGUSR1's skip, on one thread."""

    def __init__(self, path: Path | None, handle: Callable[[str], dict[str, Any]]) -> None:
        self.path = path
        self.handle = handle
        self._listener: socket.socket | None = None
        self._wake: tuple[int, int] | None = None  # a pipe: a byte written wakes the thread (s: skip, q: quit)
        self._thread = threading.Thread(target=self._run, name="speakcli-watch-control", daemon=True)

    def start(self) -> None:
        if self.path is not None:
            self._listener = self._listen(self.path)
        self._wake = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._thread.start()

    def _listen(self, path: Path) -> socket.socket | None:
        problem = private_folder_problem(path.parent)
        if problem is not None:
            log.warning("no control socket (watch-control cannot reach this daemon): %s", problem)
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            # Made in a folder of its own (0700), made 0600, then moved into place: no moment when another user
            # could connect. It replaces a socket left by a dead daemon (the state file's lock is ours).
            with tempfile.TemporaryDirectory(prefix=".speakcli-sock-", dir=path.parent) as tmp:
                made = Path(tmp) / "s"
                with _short_path(made) as address:
                    sock.bind(address)
                    os.chmod(address, 0o600)
                os.replace(made, path)
        except OSError as exc:
            sock.close()
            log.warning("no control socket at %s (%s)", path, exc.strerror or exc)
            return None
        sock.listen(64)
        sock.setblocking(False)  # readable, then gone before accept(): the thread must not wait for the next
        return sock

    def poke(self) -> None:
        """Skip the line being spoken, from a signal handler: only a byte written, the thread does the rest."""
        if self._wake is not None:
            with contextlib.suppress(OSError):  # a full pipe already holds a skip
                os.write(self._wake[1], b"s")

    def close(self) -> None:
        wake, self._wake = self._wake, None
        if wake is not None:
            with contextlib.suppress(OSError):
                os.write(wake[1], b"q")
            self._thread.join(IO_TIMEOUT + 1)
            os.close(wake[0])
            os.close(wake[1])
        if self._listener is not None and self.path is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def _run(self) -> None:
        """One thread, never blocked by a client: each connection is read as its bytes come, within IO_TIMEOUT of
        its connecting (one that sends nothing, or a byte at a time, holds neither a command nor SIGUSR1's skip)."""
        assert self._wake is not None
        wake = self._wake[0]
        clients: dict[socket.socket, tuple[float, bytearray]] = {}  # connection -> (deadline, bytes so far)
        with selectors.DefaultSelector() as sel:
            sel.register(wake, selectors.EVENT_READ)
            if self._listener is not None:
                sel.register(self._listener, selectors.EVENT_READ)
            try:
                while True:
                    first = min((deadline for deadline, _ in clients.values()), default=None)
                    wait = None if first is None else max(0.0, first - time.monotonic())
                    for key, _ in sel.select(wait):
                        if key.fileobj == wake:
                            pokes = os.read(wake, 64)
                            if b"q" in pokes:
                                return
                            self._call("skip")
                        elif key.fileobj == self._listener:
                            self._accept(sel, clients)
                        else:
                            conn = key.fileobj
                            assert isinstance(conn, socket.socket)
                            if conn in clients and self._receive(conn, clients[conn][1]):
                                self._drop(sel, clients, conn)
                    now = time.monotonic()
                    for conn in [c for c, (deadline, _) in clients.items() if deadline <= now]:
                        self._drop(sel, clients, conn)  # a client that stalled: nothing to answer
            finally:
                for conn in list(clients):
                    self._drop(sel, clients, conn)

    def _accept(self, sel: selectors.BaseSelector, clients: dict[socket.socket, tuple[float, bytearray]]) -> None:
        assert self._listener is not None
        try:
            conn, _ = self._listener.accept()
        except OSError as exc:
            log.debug("control connection: %s", exc)
            return
        if len(clients) >= MAX_CLIENTS:
            self._drop(sel, clients, min(clients, key=lambda c: clients[c][0]))
        conn.setblocking(False)
        clients[conn] = (time.monotonic() + IO_TIMEOUT, bytearray())
        sel.register(conn, selectors.EVENT_READ)

    @staticmethod
    def _drop(
        sel: selectors.BaseSelector, clients: dict[socket.socket, tuple[float, bytearray]], conn: socket.socket
    ) -> None:
        del clients[conn]
        sel.unregister(conn)
        conn.close()

    def _receive(self, conn: socket.socket, data: bytearray) -> bool:
        """Read what a client sent; once its line is whole (or too long, or it closed), answer it: True when done.
        The line is read before answering, whoever it is: a client's send must not break."""
        try:
            chunk = conn.recv(MAX_REQUEST + 1 - len(data))
        except BlockingIOError:
            return False
        except OSError:
            return True
        data += chunk
        line: bytes | None = None
        if b"\n" in data:
            line = bytes(data.split(b"\n", 1)[0])
            if len(line) > MAX_REQUEST:
                line = None
        elif chunk and len(data) <= MAX_REQUEST:
            return False  # more to come
        try:
            uid = _peer_uid(conn)
            if uid != os.geteuid():
                log.warning("refused a control command from uid %d: only this daemon's user may control it", uid)
                reply = {"ok": False, "error": f"refused: uid {uid} is not this daemon's user"}
            else:
                reply = self._request(line)
            conn.settimeout(IO_TIMEOUT)  # a reply is one short line: the socket's buffer takes it at once
            conn.sendall(json.dumps(reply).encode() + b"\n", socket.MSG_NOSIGNAL)
        except OSError as exc:  # a client that left: nothing to answer
            log.debug("control connection: %s", exc)
        return True

    def _call(self, name: str) -> dict[str, Any]:
        try:
            return {"ok": True, **self.handle(name)}
        except SpeakError as exc:
            return {"ok": False, "error": str(exc)}

    def _request(self, raw: bytes | None) -> dict[str, Any]:
        try:
            request = jsontext.loads(raw) if raw is not None else None
        except ValueError:
            request = None
        if not isinstance(request, dict) or not isinstance(request.get("command"), str):
            return {"ok": False, "error": 'send one JSON object a line: {"command": "skip"}'}
        return self._call(request["command"])


def _read_line(conn: socket.socket) -> bytes | None:
    """One line of at most MAX_REQUEST bytes (without its newline); None if longer or cut off."""
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(MAX_REQUEST + 1 - len(data))
        if not chunk or len(data) + len(chunk) > MAX_REQUEST:
            return None
        data += chunk
    return data.split(b"\n", 1)[0]


def socket_problem(path: Path) -> str | None:
    """Why the socket at `path` is not to be trusted with a command (None: it is this user's, private)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"cannot read it ({exc.strerror})"
    if not stat.S_ISSOCK(st.st_mode):
        return "it is not a socket"
    if st.st_uid != os.geteuid():
        return f"it belongs to another user (uid {st.st_uid})"
    if st.st_mode & 0o077:
        return f"other users may use it (mode {stat.S_IMODE(st.st_mode):o})"
    return private_folder_problem(path.parent)


def _connect(sock: socket.socket, path: Path) -> None:
    """Connect within IO_TIMEOUT. A Unix socket with a timeout does not wait for room in a full backlog (a burst
    of hotkey presses) but fails at once with EAGAIN: try again until the deadline."""
    deadline = time.monotonic() + IO_TIMEOUT
    while True:
        try:
            with _short_path(path) as address:
                sock.connect(address)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.01)  # nothing to wait on: the listener gives no sign when its backlog has room


def send_command(path: Path, command: str) -> dict[str, Any]:
    """Send one command to the daemon behind the socket at `path`; its reply. Refuses a socket or server another
    user could control (UnreachableError), and one no daemon answers."""
    problem = socket_problem(path)
    if problem == "missing":
        raise UnreachableError(f"no watch daemon is listening at {path}; is it running (with a state file)?")
    if problem is not None:
        raise UnreachableError(f"refusing the control socket {path}: {problem}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        sock.settimeout(IO_TIMEOUT)
        try:
            _connect(sock, path)
        except (ConnectionRefusedError, FileNotFoundError):
            raise UnreachableError(f"no watch daemon is listening at {path} (it stopped)") from None
        except OSError as exc:
            raise UnreachableError(f"cannot reach the watch daemon at {path} ({exc.strerror or exc})") from None
        uid = _peer_uid(sock)
        if uid != os.geteuid():
            raise UnreachableError(f"refusing the control socket {path}: its server runs as another user (uid {uid})")
        try:
            sock.sendall(json.dumps({"command": command}).encode() + b"\n", socket.MSG_NOSIGNAL)
            raw = _read_line(sock)
        except OSError as exc:
            raise UnreachableError(f"the watch daemon at {path} did not answer ({exc.strerror or exc})") from None
    try:
        reply = jsontext.loads(raw) if raw is not None else None
    except ValueError:
        reply = None
    if not isinstance(reply, dict):
        raise UnreachableError(f"the watch daemon at {path} gave no answer")
    return reply


def running_sockets(folder: Path) -> list[Path]:
    """The control sockets in `folder` that a daemon answers on (a dead daemon's are left out)."""
    try:
        candidates = sorted(p for p in folder.iterdir() if p.name.endswith(".sock"))
    except OSError:
        return []
    alive = []
    for path in candidates:
        if socket_problem(path) is not None:
            continue
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as probe:
            probe.settimeout(IO_TIMEOUT)
            try:
                _connect(probe, path)
            except OSError:
                continue
        alive.append(path)
    return alive
