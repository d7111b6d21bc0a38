"""Warm starts: a running server advertises itself, and a one-off `say` speaks through its loaded model."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from speakcli.engines import EngineSpec
from speakcli.errors import (
    BusyError,
    LimitError,
    ModelError,
    SpeakError,
    SynthesisError,
    UsageError,
    VoiceError,
)
from speakcli.fsutil import atomic_write
from speakcli.settings import Settings

_WAV_HEADER = 44  # the server's streamed WAV: RIFF, one fmt chunk, then data


def adverts_dir() -> Path:
    """`$XDG_RUNTIME_DIR/speakcli/servers` (private to the user, gone at logout), else a per-user temp folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "speakcli" / "servers"
    return Path(tempfile.gettempdir()) / f"speakcli-{os.getuid()}" / "servers"


def _ours(folder: Path) -> bool:
    # A shared temp dir: a folder someone else made (or a link they planted) is not trusted either way.
    try:
        st = folder.lstat()
    except OSError:
        return False
    return st.st_uid == os.getuid() and not folder.is_symlink()


@dataclass(frozen=True)
class Advert:
    """What a client must know to use a server, and what the server's model is, to use only a matching one."""

    url: str
    pid: int
    engine: str
    model_dir: str | None
    device: str
    voices_dir: str
    auth: bool  # the server wants an API key (SPEAKCLI_API_KEY); the key itself is never written here

    @staticmethod
    def of(url: str, spec: EngineSpec, settings: Settings, auth: bool) -> Advert:
        return Advert(
            url, os.getpid(), spec.name, str(spec.model_dir) if spec.model_dir else None, spec.device,
            str(settings.voices_dir), auth,
        )  # fmt: skip

    def serves(self, spec: EngineSpec, settings: Settings) -> bool:
        """Whether this server speaks as a local run with `spec` and `settings` would."""
        model_dir = str(spec.model_dir) if spec.model_dir else None
        return (self.engine, self.model_dir, self.device, self.voices_dir) == (
            spec.name, model_dir, spec.device, str(settings.voices_dir),
        )  # fmt: skip


def advertise(advert: Advert) -> Path:
    """Write the advert (atomically: a reader never sees half of it); remove it with `withdraw`."""
    folder = adverts_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not _ours(folder):
        raise OSError(f"{folder} belongs to another user")
    path = folder / f"{advert.pid}.json"
    atomic_write(path, json.dumps(asdict(advert)).encode())
    return path


def withdraw(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process reuses the pid: not our server
        return False
    return True


def find_server(spec: EngineSpec, settings: Settings) -> Advert | None:
    """A live server on this machine whose model and voices match; adverts of dead servers are removed."""
    folder = adverts_dir()
    if not _ours(folder):
        return None
    try:
        entries = sorted(folder.glob("*.json"))
    except OSError:
        return None
    for path in entries:
        try:
            data = json.loads(path.read_text())  # JSON only: never unpickle what another program wrote
            advert = Advert(**data)
        except (OSError, ValueError, TypeError):
            continue
        if not _alive(advert.pid):
            withdraw(path)
            continue
        if advert.serves(spec, settings):
            return advert
    return None


class Unavailable(Exception):
    """The server did not answer (gone, not listening): speak locally instead."""


@dataclass
class RemoteSpeech:
    """Audio chunks streamed from a server, and their sample rate (known once the header arrived)."""

    sample_rate: int
    chunks: Iterator[np.ndarray]


def _error(status: int, body: bytes) -> SpeakError:
    try:
        err = json.loads(body)["error"]
        code, message = str(err["code"]), str(err["message"])
    except (ValueError, KeyError, TypeError):
        return SynthesisError(f"the server answered {status}")
    if code == "busy":
        return BusyError(f"the server is busy: {message}", retry_after=1)
    if code == "voice":
        return VoiceError(message)
    if code in ("cannot_clone", "model"):
        return ModelError(message, code=code)
    if code == "too_large":
        return LimitError(message)
    if 400 <= status < 500:
        return UsageError(message, code=code)
    return SynthesisError(f"the server failed: {message}")


def speak_remote(
    url: str,
    text: str,
    settings: Settings,
    voice: str | None,
    api_key: str | None = None,
    timeout: float = 300.0,
) -> RemoteSpeech:
    """Ask the server at `url` for `text`, streamed; raises `Unavailable` if it does not answer, else its errors."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout)
    body: dict[str, Any] = {
        "text": text,
        "voice": voice,
        "language": settings.language,
        "speed": settings.speed,
        "temperature": settings.temperature,
        "stream": True,
        "format": "wav",
    }
    headers = {"Content-Type": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    try:
        conn.request("POST", "/v1/synthesize", json.dumps(body), headers)
        resp = conn.getresponse()
    except OSError as exc:
        conn.close()
        raise Unavailable(str(exc)) from None
    if resp.status != 200:
        data = resp.read()
        conn.close()
        raise _error(resp.status, data)
    header = resp.read(_WAV_HEADER)
    if len(header) < _WAV_HEADER or header[:4] != b"RIFF":
        conn.close()
        raise SynthesisError("the server sent no audio")
    rate = struct.unpack("<I", header[24:28])[0]

    def chunks() -> Iterator[np.ndarray]:
        carry = b""
        try:
            while True:
                data = resp.read1(64 * 1024)
                if not data:
                    return
                data = carry + data
                even = len(data) - len(data) % 2
                carry = data[even:]
                if even:
                    yield np.frombuffer(data[:even], "<i2").astype(np.float32) / 32767.0
        finally:
            conn.close()  # an early stop closes the connection: the server cancels the rest

    return RemoteSpeech(rate, chunks())


def warm_server(settings: Settings, voice: str | None) -> str | None:
    """The URL of a running server that speaks as this run would, or None (then speak locally).

    Costs a directory listing and a small file read; never imports the engine. A voice that is a file path
    is not something a server takes, so such a run stays local.
    """
    if os.environ.get("SPEAKCLI_NO_SERVER") == "1":
        return None
    if voice is not None and ("/" in voice or "\\" in voice or os.path.splitext(voice)[1]):
        return None
    from speakcli.engines import choose_engine

    try:
        spec = choose_engine(settings)
    except SpeakError:
        return None
    advert = find_server(spec, settings)
    if advert is None or (advert.auth and not os.environ.get("SPEAKCLI_API_KEY")):
        return None
    return advert.url
