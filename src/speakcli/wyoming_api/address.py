"""Where a Wyoming server listens: `tcp://HOST:PORT` or `unix://PATH`, parsed without importing `wyoming`."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from speakcli.errors import UsageError


@dataclass(frozen=True)
class Address:
    scheme: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    def uri(self, port: int | None = None) -> str:
        if self.scheme == "unix":
            return f"unix://{self.path}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp://{host}:{self.port if port is None else port}"


def parse_address(uri: str) -> Address:
    """`tcp://127.0.0.1:10200` (port 0: any free port) or `unix:///run/speakcli.sock`; a usage error otherwise."""
    usage = f"Wyoming address {uri!r} is not tcp://HOST:PORT or unix://PATH"
    try:
        parts = urlsplit(uri)
        port = parts.port
    except ValueError:
        raise UsageError(f"{usage} (the port must be 0 to 65535)") from None
    if parts.scheme == "unix" and (parts.netloc or parts.path):
        return Address("unix", path=parts.netloc + parts.path)
    if parts.scheme == "tcp" and parts.hostname and port is not None and not parts.path.strip("/"):
        return Address("tcp", host=parts.hostname, port=port)
    raise UsageError(usage)
