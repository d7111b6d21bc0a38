"""Server adverts: a running server's private note of where it listens, what it speaks and the secret it proves."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import stat
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from speakcli import jsontext
from speakcli.engines import EngineSpec
from speakcli.fsutil import atomic_write
from speakcli.settings import Settings

MAX_ADVERT_BYTES = 16 * 1024  # an advert is a few hundred bytes; a bigger file is not one
MAX_ADVERTS = 64  # adverts read per lookup: one per running server, so a flood of files cannot stall `say`
_PROOF_CONTEXT = b"speakcli server identity\x00"


def adverts_dir() -> Path:
    """`$XDG_RUNTIME_DIR/speakcli/servers` (private to the user, gone at logout), else a per-user temp folder."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and os.path.isabs(runtime):
        return Path(runtime) / "speakcli" / "servers"
    return Path(tempfile.gettempdir()) / f"speakcli-{os.getuid()}" / "servers"


def new_secret() -> str:
    """A server's identity secret: written only into its private advert, never sent."""
    return secrets.token_hex(32)


def proof(secret: str, nonce: str) -> str:
    """What a server that knows `secret` answers to a client's `nonce`: HMAC-SHA256, hex."""
    return hmac.new(secret.encode(), _PROOF_CONTEXT + nonce.encode(), hashlib.sha256).hexdigest()


def _private_dir(folder: Path) -> bool:
    # lstat: a link someone planted is not our folder, wherever it points.
    try:
        st = folder.lstat()
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and st.st_mode & 0o077 == 0


def _read_private(path: Path) -> bytes | None:
    """The file's bytes when it is a regular file of this user that nobody else can read or write, else None."""
    try:
        # O_NOFOLLOW: not through a planted link; O_NONBLOCK: a planted FIFO must not hang the reader.
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        st = os.fstat(fd)  # of the file opened, not of whatever the name points to by now
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None
        data = os.read(fd, MAX_ADVERT_BYTES + 1)
        return data if len(data) <= MAX_ADVERT_BYTES else None
    except OSError:
        return None
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Advert:
    """What a client must know to use a server, and everything of the server's that changes the audio it makes
    for a request, so that only a server that speaks exactly as the local run would is used."""

    url: str
    pid: int
    secret: str  # the server proves it knows this (see `proof`); the file is private to the user
    engine: str
    model_dir: str | None
    device: str
    precision: str
    voices_dir: str
    voice: str | None  # the server's default voice: what a request without one gets
    pause: float
    max_text: int
    auth: bool  # the server wants an API key (SPEAKCLI_API_KEY); the key itself is never written here
    text: list[Any]  # its text step (`Speakable.identity`): verbatim or not, actions, the lexicon's digest

    @staticmethod
    def of(
        url: str,
        spec: EngineSpec,
        settings: Settings,
        *,
        auth: bool,
        secret: str,
        max_text: int,
        text: list[Any] | None = None,
    ) -> Advert:
        """The advert of a server with these settings; `text`, its text step's identity, if not the settings'."""
        text = text if text is not None else text_identity(settings)
        return Advert(
            url, os.getpid(), secret, spec.name, str(spec.model_dir) if spec.model_dir else None, spec.device,
            spec.precision, str(settings.voices_dir), settings.voice, settings.pause, max_text, auth, text,
        )  # fmt: skip

    @staticmethod
    def parse(data: bytes) -> Advert:
        """An advert from its JSON (never a pickle: another program may have written it); ValueError if malformed."""
        raw: Any = jsontext.loads(data)
        if not isinstance(raw, dict) or set(raw) != {f.name for f in fields(Advert)}:
            raise ValueError("not an advert of this version")
        advert = Advert(**raw)
        fields_ = (("url", str), ("pid", int), ("secret", str), ("max_text", int), ("auth", bool), ("text", list))
        for name, kinds in fields_:
            if not isinstance(getattr(advert, name), kinds):
                raise ValueError(f"advert field {name} has the wrong type")
        return advert

    def serves(self, spec: EngineSpec, settings: Settings, text: list[Any] | None = None) -> bool:
        """Whether this server speaks as a local run with `spec` and `settings` would (`text`: the run's text step
        identity, if already known).

        A request carries its text, voice, language, speed and temperature; everything else that shapes the audio
        must be the server's own: engine, model, device, precision, voices folder, pause and text step (Markdown
        read aloud or not, actions, the lexicon's words). A run without a voice gets the engine's default, so only
        from a server without a default voice of its own.
        """
        text = text if text is not None else text_identity(settings)
        model_dir = str(spec.model_dir) if spec.model_dir else None
        ours = (spec.name, model_dir, spec.device, spec.precision, str(settings.voices_dir), settings.pause, text)
        theirs = (self.engine, self.model_dir, self.device, self.precision, self.voices_dir, self.pause, self.text)
        return ours == theirs and (settings.voice is not None or self.voice is None)


def text_identity(settings: Settings) -> list[Any]:
    """The identity of the text step these settings give; reads the lexicon (a bad file: `UsageError`)."""
    from speakcli.speakable import Speakable

    return Speakable.of(settings.verbatim, settings.actions, settings.lexicon).identity


def advertise(advert: Advert) -> Path:
    """Write the advert, private to the user (folder 0700, file 0600) and atomically; remove it with `withdraw`."""
    folder = adverts_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    for level in (folder.parent, folder):
        st = level.lstat()
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
            raise OSError(f"{level} is not a folder of this user")
        if st.st_mode & 0o077:
            level.chmod(0o700)  # ours, made by an older version or another umask: readers trust only 0700
    path = folder / f"{advert.pid}.json"
    atomic_write(path, json.dumps(asdict(advert)).encode(), mode=0o600)
    return path


def withdraw(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:  # someone else's process reuses the pid: not our server
        return False
    return True


def find_servers(spec: EngineSpec, settings: Settings) -> list[Advert]:
    """Trusted adverts of live servers that speak as a local run would; adverts of dead servers are removed.

    Trusted: the folder and the folder above it are the user's and private (0700), the file is the user's, regular
    and private (0600). Whether the server at the URL is the one that wrote it is for the client to prove.
    """
    folder = adverts_dir()
    if not (_private_dir(folder.parent) and _private_dir(folder)):
        return []
    try:
        entries = sorted(folder.glob("*.json"))[:MAX_ADVERTS]
    except OSError:
        return []
    found = []
    text = text_identity(settings) if entries else None  # once; a bad lexicon is the run's error (exit 2)
    for path in entries:
        data = _read_private(path)
        if data is None:
            continue
        try:
            advert = Advert.parse(data)
        except (ValueError, TypeError):
            continue
        if not _alive(advert.pid):
            withdraw(path)
            continue
        if advert.serves(spec, settings, text):
            found.append(advert)
    return found
