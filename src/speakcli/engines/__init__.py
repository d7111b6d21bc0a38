"""Engine selection: a registry of engines with their declared capabilities, and the spec that builds one."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from speakcli.engines.base import Capabilities, CloningEngine, Engine, SynthesisOptions, Voice
from speakcli.engines.xtts_store import (
    MODEL_FILES,
    XTTS_MODEL_NAME,
    XTTS_REPO_ID,
    check_model_dir,
    coqui_store_model,
    find_xtts_folder,
    xtts_installed,
)
from speakcli.errors import Hint, ModelError
from speakcli.settings import Settings

__all__ = [
    "MODEL_FILES",
    "XTTS_MODEL_NAME",
    "XTTS_REPO_ID",
    "Capabilities",
    "CloningEngine",
    "Engine",
    "EngineSpec",
    "SynthesisOptions",
    "Voice",
    "check_model_dir",
    "choose_engine",
    "cloning_engine",
    "coqui_store_model",
    "create_engine",
    "find_xtts_folder",
    "register",
    "xtts_installed",
]

log = logging.getLogger("speakcli")


@dataclass(frozen=True)
class EngineSpec:
    """Which engine to build: enough to create it (picklable, so a remote worker can build its own)."""

    name: str
    model_dir: Path | None = None
    device: str = "auto"
    note: str = field(default="", compare=False)  # how it was chosen; not part of its identity
    cache_dir: Path | None = None
    precision: str = "auto"
    # `--engine auto` found no usable XTTS and took the bundled voice: front ends may say so.
    fallback: bool = field(default=False, compare=False)


def choose_engine(settings: Settings) -> EngineSpec:
    """Pick the engine the settings ask for, without importing torch or TTS."""
    if settings.engine == "piper":
        return EngineSpec("piper", note="piper (bundled voice en_US-joe-medium)")
    if settings.engine == "xtts":
        folder, where = find_xtts_folder(settings)
        if folder is None:
            raise ModelError(where[0].upper() + where[1:], hint=Hint.MODEL_DIR)
        if not xtts_installed():
            raise ModelError("the xtts engine needs coqui-tts and torch; pip install 'speakcli[xtts]'")
        return _xtts_spec(settings, folder, where)
    # auto: XTTS when a model and the packages are here, else the bundled voice.
    folder, where = find_xtts_folder(settings)
    if folder is not None and xtts_installed():
        return _xtts_spec(settings, folder, where)
    why = where if folder is None else "coqui-tts is not installed (pip install 'speakcli[xtts]')"
    return EngineSpec("piper", note=f"piper (bundled voice en_US-joe-medium): {why}", fallback=True)


def _xtts_spec(settings: Settings, folder: Path, where: str) -> EngineSpec:
    return EngineSpec(
        "xtts", folder, settings.device, note=f"xtts from {where}", cache_dir=settings.cache_dir,
        precision=settings.precision,
    )  # fmt: skip


# Engine name -> factory. Each engine class declares its own Capabilities; nothing is inferred from its name.
_REGISTRY: dict[str, Callable[[EngineSpec], Engine]] = {}


def register(name: str, factory: Callable[[EngineSpec], Engine]) -> None:
    """Make `--engine NAME` build engines with `factory` (imported lazily, so choosing one costs nothing)."""
    _REGISTRY[name] = factory


def create_engine(spec: EngineSpec) -> Engine:
    """A new, not yet loaded engine for `spec`; its owner (a SpeechService) drives it from one worker thread."""
    factory = _REGISTRY.get(spec.name)
    if factory is None:
        raise ModelError(f"unknown engine {spec.name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return factory(spec)


def cloning_engine(engine: Engine) -> CloningEngine | None:
    """`engine` as a CloningEngine when it declares cloning, else None."""
    return engine if engine.capabilities.cloning and isinstance(engine, CloningEngine) else None


def _piper(spec: EngineSpec) -> Engine:
    from speakcli.engines.piper import PiperEngine

    return PiperEngine()


def _xtts(spec: EngineSpec) -> Engine:
    from speakcli.engines.xtts import XttsEngine
    from speakcli.latents import LatentCache

    assert spec.model_dir is not None
    cache = LatentCache(spec.cache_dir / "latents", warn=log.warning) if spec.cache_dir else None
    return XttsEngine(spec.model_dir, device=spec.device, cache=cache, precision=spec.precision)


register("piper", _piper)
register("xtts", _xtts)
