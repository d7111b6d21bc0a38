"""Where speakcli keeps config, data (voices), cache and state: platformdirs (XDG on Linux, native elsewhere)."""

from __future__ import annotations

import sys
from pathlib import Path

from platformdirs.api import PlatformDirsABC

APP = "speakcli"


def app_dirs(system: str | None = None) -> PlatformDirsABC:
    """The platform's folders for speakcli; `system` (a `sys.platform` value) picks another platform's rules."""
    system = system or sys.platform
    # appauthor=False: no "<author>/" level on Windows; the same paths as before on Linux, XDG_* honoured.
    if system == "darwin":
        from platformdirs.macos import MacOS

        return MacOS(APP, appauthor=False)
    if system == "win32":
        from platformdirs.windows import Windows

        return Windows(APP, appauthor=False)
    from platformdirs.unix import Unix

    return Unix(APP, appauthor=False)


def config_dir() -> Path:
    return Path(app_dirs().user_config_dir)


def config_file() -> Path:
    """The default config file; SPEAKCLI_CONFIG (read by `speakcli.settings`) may name another."""
    return config_dir() / "config.toml"


def data_dir() -> Path:
    return Path(app_dirs().user_data_dir)


def cache_dir() -> Path:
    return Path(app_dirs().user_cache_dir)


def state_dir() -> Path:
    return Path(app_dirs().user_state_dir)


def all_dirs() -> dict[str, str]:
    """Every folder speakcli uses by default, by role, for `info`."""
    return {"config": str(config_dir()), "data": str(data_dir()), "cache": str(cache_dir()), "state": str(state_dir())}
