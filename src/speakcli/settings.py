"""Typed settings resolved from flag, then SPEAKCLI_* env var, then the TOML config file, then default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import tomllib

from speakcli import dirs
from speakcli.errors import UsageError

ENGINES = ("auto", "xtts", "piper")
PRECISIONS = ("auto", "fp32", "bf16", "int8")
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _env(name: str, doc: str) -> dict[str, str]:
    return {"env": name, "doc": doc}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to pick an engine and speak; each field has an env var and a config key."""

    engine: str = field(default="auto", metadata=_env("SPEAKCLI_ENGINE", "auto, xtts or piper"))
    model_dir: Path | None = field(
        default=None,
        metadata=_env("SPEAKCLI_XTTS_DIR", "a local XTTS v2 model folder (config.json, model.pth, vocab.json)"),
    )
    device: str = field(default="auto", metadata=_env("SPEAKCLI_DEVICE", "auto, cpu, cuda or cuda:N"))
    precision: str = field(default="auto", metadata=_env("SPEAKCLI_PRECISION", "XTTS GPT: auto, fp32, bf16 or int8"))
    voice: str | None = field(default=None, metadata=_env("SPEAKCLI_VOICE", "voice name, speaker, WAV file or folder"))
    language: str = field(default="en", metadata=_env("SPEAKCLI_LANGUAGE", "language code, e.g. en, de, fr"))
    speed: float = field(default=1.0, metadata=_env("SPEAKCLI_SPEED", "speaking rate, 0.25 to 4"))
    temperature: float = field(default=0.75, metadata=_env("SPEAKCLI_TEMPERATURE", "XTTS sampling temperature"))
    pause: float = field(default=0.2, metadata=_env("SPEAKCLI_PAUSE", "seconds of silence between sentences"))
    output_device: str | None = field(
        default=None, metadata=_env("SPEAKCLI_OUTPUT_DEVICE", "audio output device: index or part of its name")
    )
    voices_dir: Path = field(
        default_factory=lambda: dirs.data_dir() / "voices", metadata=_env("SPEAKCLI_VOICES_DIR", "your voice library")
    )
    cache_dir: Path = field(default_factory=dirs.cache_dir, metadata=_env("SPEAKCLI_CACHE_DIR", "latent cache"))

    def validate(self) -> Settings:
        if self.engine not in ENGINES:
            raise UsageError(f"engine {self.engine!r} is unknown; use one of: {', '.join(ENGINES)}")
        if not _DEVICE_RE.fullmatch(self.device):  # fullmatch: "$" would let "cpu\n" through
            raise UsageError(f"device {self.device!r} is not valid; use auto, cpu, cuda or cuda:N")
        if self.precision not in PRECISIONS:
            raise UsageError(f"precision {self.precision!r} is unknown; use one of: {', '.join(PRECISIONS)}")
        if not 0.25 <= self.speed <= 4.0:
            raise UsageError(f"speed {self.speed} is out of range; use a value from 0.25 to 4")
        if not 0.0 < self.temperature <= 2.0:
            raise UsageError(f"temperature {self.temperature} is out of range; use a value above 0 and at most 2")
        if not 0.0 <= self.pause <= 10.0:
            raise UsageError(f"pause {self.pause} is out of range; use 0 to 10 seconds")
        return self


def _convert(name: str, raw: Any, kind: str, source: str | None) -> Any:
    """`raw` as the field's type; `source` (an env var or the config file) is named in the error, a front end's
    own value (a flag, a request field) is named by its setting."""
    if raw is None:
        return None
    try:
        if "float" in kind:
            return float(raw)
        if "Path" in kind:
            return Path(os.path.expanduser(str(raw)))
        return str(raw)
    except (TypeError, ValueError):
        where = f"{source}: " if source else ""
        raise UsageError(f"{where}{name} = {raw!r} is not a valid {kind.split('|')[0].strip()}") from None


def read_config(path: Path) -> dict[str, Any]:
    """The config file's keys, or {} when it does not exist."""
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        return {}
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"config file {path} is not valid TOML ({exc}); fix or remove it") from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text; save it as UTF-8 or remove it") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"config file {path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Resolve settings: a flag that is not None wins, then the env var, then the config file, then the default."""
    env = os.environ if env is None else env
    flags = flags or {}
    path = config_path or dirs.config_file()
    config = read_config(path)
    values: dict[str, Any] = {}
    for f in fields(Settings):
        kind = str(f.type)
        env_name = f.metadata["env"]
        if flags.get(f.name) is not None:
            values[f.name] = _convert(f.name, flags[f.name], kind, None)
        elif env.get(env_name):
            values[f.name] = _convert(f.name, env[env_name], kind, env_name)
        elif f.name in config:
            values[f.name] = _convert(f.name, config[f.name], kind, str(path))
    return replace(Settings(), **values).validate()
