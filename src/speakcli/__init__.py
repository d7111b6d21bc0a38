"""speakcli: speak text from the command line with Coqui XTTS v2 or a bundled Piper voice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["Service", "Speech", "__version__", "speak"]

if TYPE_CHECKING:
    from speakcli.api import Service, Speech, speak


def __getattr__(name: str) -> Any:
    # Loaded on first use: `import speakcli` (and so `speakcli --help`) stays free of numpy, the engines and torch.
    if name in ("Service", "Speech", "speak"):
        from speakcli import api

        return getattr(api, name)
    raise AttributeError(f"module 'speakcli' has no attribute {name!r}")
