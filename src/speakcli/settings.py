"""Typed settings resolved from flag, then SPEAKCLI_* env var, then the TOML config file, then default."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import tomllib

from speakcli import dirs, tomltext
from speakcli.errors import UsageError

EngineName = Literal["auto", "xtts", "piper"]
ENGINES: tuple[str, ...] = get_args(EngineName)
PrecisionName = Literal["auto", "fp32", "bf16", "int8"]
PRECISIONS: tuple[str, ...] = get_args(PrecisionName)
ActionsName = Literal["speak", "skip"]
ACTIONS: tuple[str, ...] = get_args(ActionsName)
CONFIG_ENV = "SPEAKCLI_CONFIG"
MAX_BATCH = 64  # past this a step's memory (a KV cache per sentence) outgrows what batching gains
_DEVICE_RE = re.compile(r"auto|cpu|cuda(:\d+)?")


def _meta(env: str, doc: str, metavar: str) -> dict[str, str]:
    # `doc` and `metavar` are what a front end shows for the setting (the CLI's --help builds its options from them).
    return {"env": env, "doc": doc, "metavar": metavar}


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to pick an engine and speak; each field has an env var and a config key."""

    engine: str = field(default="auto", metadata=_meta("SPEAKCLI_ENGINE", "Engine to speak with.", "ENGINE"))
    model_dir: Path | None = field(
        default=None,
        metadata=_meta("SPEAKCLI_XTTS_DIR", "Local XTTS v2 model folder (config.json, model.pth, vocab.json).", "DIR"),
    )
    device: str = field(
        default="auto", metadata=_meta("SPEAKCLI_DEVICE", "Where XTTS runs: auto, cpu, cuda or cuda:N.", "DEVICE")
    )
    precision: str = field(
        default="auto",
        metadata=_meta(
            "SPEAKCLI_PRECISION",
            "XTTS precision: auto, fp32, bf16 or int8 (the GPT's; at bf16 or int8 the decoder's too, on a CPU with native bf16).",
            "PREC",
        ),
    )
    max_batch: int = field(
        default=0,
        metadata=_meta(
            "SPEAKCLI_MAX_BATCH",
            "Most XTTS sentences stepped together (0: chosen per device: CPU 8 at int8, else 4; GPU 16).",
            "N",
        ),
    )
    seed: int | None = field(
        default=None,
        metadata=_meta(
            "SPEAKCLI_SEED", "Seed XTTS's sampling: the same text and seed say the same (default: random).", "N"
        ),
    )
    voice: str | None = field(
        default=None,
        metadata=_meta("SPEAKCLI_VOICE", "Voice name, built-in speaker, audio file or folder of clips.", "VOICE"),
    )
    language: str = field(default="en", metadata=_meta("SPEAKCLI_LANGUAGE", "Language code (en, de, fr...).", "LANG"))
    speed: float = field(default=1.0, metadata=_meta("SPEAKCLI_SPEED", "Speaking rate, 0.25 to 4.", "RATE"))
    temperature: float = field(
        default=0.75, metadata=_meta("SPEAKCLI_TEMPERATURE", "XTTS sampling temperature (above 0, at most 2).", "T")
    )
    pause: float = field(
        default=0.2, metadata=_meta("SPEAKCLI_PAUSE", "Seconds of silence between sentences (0 to 10).", "SECONDS")
    )
    output_device: str | None = field(
        default=None,
        metadata=_meta(
            "SPEAKCLI_OUTPUT_DEVICE", "Audio output: index or part of its name (see `speakcli devices`).", "DEVICE"
        ),
    )
    voices_dir: Path = field(
        default_factory=lambda: dirs.data_dir() / "voices",
        metadata=_meta("SPEAKCLI_VOICES_DIR", "Your voice library.", "DIR"),
    )
    cache_dir: Path = field(
        default_factory=dirs.cache_dir, metadata=_meta("SPEAKCLI_CACHE_DIR", "Latent cache folder.", "DIR")
    )
    verbatim: bool = field(
        default=False,
        metadata=_meta(
            "SPEAKCLI_VERBATIM", "Speak text as written: no Markdown or chat clean-up (the lexicon still applies).", ""
        ),
    )
    actions: str = field(
        default="speak",
        metadata=_meta("SPEAKCLI_ACTIONS", "Chat *actions*: speak their words, or skip them.", "ACTIONS"),
    )
    lexicon: Path | None = field(
        default=None,
        metadata=_meta(
            "SPEAKCLI_LEXICON", 'Pronunciation lexicon: TOML (word = "said as") or TSV (word, tab, said as).', "FILE"
        ),
    )

    def validate(self) -> Settings:
        for f in fields(self):
            problem = _problem(f.name, getattr(self, f.name))
            if problem:
                raise UsageError(f"{f.name} {_shown(getattr(self, f.name))} {problem}")
        return self


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _problem(name: str, value: Any) -> str | None:
    """What is wrong with `value` for setting `name` (e.g. "is out of range; use ..."), or None."""
    if name == "engine" and value not in ENGINES:
        return f"is unknown; use one of: {', '.join(ENGINES)}"
    if name == "device" and not _DEVICE_RE.fullmatch(value):  # fullmatch: "$" would let "cpu\n" through
        return "is not valid; use auto, cpu, cuda or cuda:N"
    if name == "precision" and value not in PRECISIONS:
        return f"is unknown; use one of: {', '.join(PRECISIONS)}"
    if name == "speed" and not 0.25 <= value <= 4.0:
        return "is out of range; use a value from 0.25 to 4"
    if name == "temperature" and not 0.0 < value <= 2.0:
        return "is out of range; use a value above 0 and at most 2"
    if name == "pause" and not 0.0 <= value <= 10.0:
        return "is out of range; use 0 to 10 seconds"
    if name == "seed" and value is not None and not 0 <= value < 2**63:
        return "is out of range; use a whole number from 0 to 2**63 - 1"
    if name == "actions" and value not in ACTIONS:
        return f"is unknown; use one of: {', '.join(ACTIONS)}"
    if name == "max_batch" and not 0 <= value <= MAX_BATCH:
        return f"is out of range; use 1 to {MAX_BATCH}, or 0 to let speakcli choose"
    return None


def _convert(raw: Any, kind: str, from_text: bool) -> Any:
    """`raw` as the field's type, or ValueError saying what it should be. Text (a flag, an env var) is parsed;
    a TOML value must already have the right type, so `speed = "fast"` or `voice = 3` are errors, not guesses."""
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        words = {
            "1": True,
            "true": True,
            "yes": True,
            "on": True,
            "0": False,
            "false": False,
            "no": False,
            "off": False,
        }
        if from_text and isinstance(raw, str) and raw.strip().lower() in words:
            return words[raw.strip().lower()]
        raise ValueError("is not true or false" + (" (1, true, yes, on; 0, false, no, off)" if from_text else ""))
    if kind.startswith("int"):
        if isinstance(raw, bool) or not isinstance(raw, (int, str)) or (isinstance(raw, str) and not from_text):
            raise ValueError("is not a whole number")
        try:
            return int(raw)
        except ValueError:
            raise ValueError("is not a whole number") from None
    if "float" in kind:
        if isinstance(raw, bool) or not isinstance(raw, (int, float, str)) or (isinstance(raw, str) and not from_text):
            raise ValueError("is not a number")
        try:
            return float(raw)
        except ValueError:
            raise ValueError("is not a number") from None
    if not isinstance(raw, (str, Path)):
        raise ValueError("is not a string (put it in quotes)")
    if "Path" in kind:
        return Path(os.path.expanduser(str(raw)))
    return str(raw)


@dataclass(frozen=True)
class ConfigSource:
    """The config file in use: `named` when SPEAKCLI_CONFIG chose it (then it must exist)."""

    path: Path
    named: bool


def config_source(env: Mapping[str, str] | None = None, default: Path | None = None) -> ConfigSource:
    env = os.environ if env is None else env
    if env.get(CONFIG_ENV):
        return ConfigSource(Path(os.path.expanduser(env[CONFIG_ENV])), named=True)
    return ConfigSource(default or dirs.config_file(), named=False)


def _toml_error(path: Path, exc: tomllib.TOMLDecodeError) -> str:
    """The parser's message with the offending line quoted, so the key is named even when TOML cannot parse it."""
    text = f"config file {path} is not valid TOML: {exc}"
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    match = re.search(r"at line (\d+)", str(exc))
    if match and int(match.group(1)) <= len(lines):
        text += f" in {lines[int(match.group(1)) - 1].strip()!r}"
    elif "end of document" in str(exc) and any(ln.strip() for ln in lines):
        text += f" in {[ln for ln in lines if ln.strip()][-1].strip()!r}"
    return text + "; fix or remove it"


def read_config(source: ConfigSource | Path, problems: list[str] | None = None) -> dict[str, Any]:
    """The config file's keys; {} when the default file does not exist; UsageError naming the file otherwise.

    With `problems`, unknown keys are listed there and the known ones still used."""
    if isinstance(source, Path):
        source = ConfigSource(source, named=False)
    path = source.path
    try:
        with path.open("rb") as fh:
            data = tomltext.loads(fh.read().decode("utf-8"))
    except FileNotFoundError:
        if source.named:
            raise UsageError(
                f"config file {path} (named by {CONFIG_ENV}) does not exist; create it, or unset {CONFIG_ENV}"
            ) from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(_toml_error(path, exc)) from None
    except UnicodeDecodeError:
        raise UsageError(f"config file {path} is not UTF-8 text; save it as UTF-8 or remove it") from None
    except OSError as exc:
        raise UsageError(f"config file {path} cannot be read ({exc.strerror or exc}); fix or remove it") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(data) - known)
    if unknown:
        message = f"config file {path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
        if problems is None:
            raise UsageError(message)
        problems.append(message)
    return {k: v for k, v in data.items() if k in known}


def resolve_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> tuple[Settings, list[str]]:
    """Settings for a report that must run whatever is broken (`info`): a bad env var or config value (or a bad
    config file) is listed in the problems and skipped, so the next source decides. Bad flags still raise."""
    problems: list[str] = []
    return _resolve(flags, env, config_path, problems), problems


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> Settings:
    """Resolve settings: a flag that is not None wins, then the env var, then the config file, then the default.

    `config_path` is the default config file (SPEAKCLI_CONFIG in `env` overrides it). Every bad value raises a
    UsageError naming where it came from: the env var, or the config file and its key.
    """
    return _resolve(flags, env, config_path, None)


def _resolve(
    flags: Mapping[str, Any] | None, env: Mapping[str, str] | None, config_path: Path | None, problems: list[str] | None
) -> Settings:
    env = os.environ if env is None else env
    flags = flags or {}
    source = config_source(env, config_path)

    def fail(message: str) -> None:
        if problems is None:
            raise UsageError(message)
        problems.append(message)

    try:
        config = read_config(source, problems)
    except UsageError as exc:
        fail(str(exc))
        config = {}
    values: dict[str, Any] = {}
    for f in fields(Settings):
        kind, env_name = str(f.type), f.metadata["env"]
        if flags.get(f.name) is not None:
            value = _flag_value(f.name, flags[f.name], kind)
            problem = _problem(f.name, value)
            if problem:
                raise UsageError(f"{f.name} {_shown(value)} {problem}")
            values[f.name] = value
            continue
        candidates = []
        if env.get(env_name):
            candidates.append((env_name, env[env_name], True))
        if f.name in config:
            candidates.append((f"config file {source.path}", config[f.name], False))
        for where, raw, from_text in candidates:
            try:
                value = _convert(raw, kind, from_text)
                problem = _problem(f.name, value)
                if problem:
                    raise ValueError(problem)
            except ValueError as exc:
                fail(f"{where}: {f.name} = {raw!r} {exc}")
                continue  # only reached when reporting: the next source decides
            values[f.name] = value
            break
    return replace(Settings(), **values)


def _flag_value(name: str, raw: Any, kind: str) -> Any:
    try:
        return _convert(raw, kind, True)
    except ValueError as exc:
        raise UsageError(f"{name} = {raw!r} {exc}") from None
