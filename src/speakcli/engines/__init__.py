"""Engine selection and the one process-wide engine, created lazily behind a lock."""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from speakcli.engines.base import Engine, SynthesisOptions, Voice
from speakcli.errors import ModelError
from speakcli.settings import Settings

__all__ = ["Engine", "EngineSpec", "SynthesisOptions", "Voice", "choose_engine", "create_engine", "shared_engine"]

log = logging.getLogger("speakcli")

XTTS_MODEL_NAME = "tts_models/multilingual/multi-dataset/xtts_v2"
XTTS_REPO_ID = "tts-hub/XTTS-v2"
MODEL_FILES = ("config.json", "model.pth", "vocab.json")


@dataclass(frozen=True)
class EngineSpec:
    """Which engine to build: enough to create it, and a key for the shared instance."""

    name: str
    model_dir: Path | None = None
    device: str = "auto"
    note: str = field(default="", compare=False)  # how it was chosen; not part of its identity
    cache_dir: Path | None = None


def xtts_installed() -> bool:
    return importlib.util.find_spec("TTS") is not None and importlib.util.find_spec("torch") is not None


def coqui_data_dir() -> Path:
    """coqui's own `get_user_data_dir("tts")`, computed without importing TTS."""
    if os.environ.get("TTS_HOME"):
        return Path(os.environ["TTS_HOME"]) / "tts"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tts"


def hf_hub_cache() -> Path:
    """Hugging Face's hub cache, read from the environment now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache"), "huggingface"
    )
    return Path(home) / "hub"


def coqui_store_model() -> Path | None:
    """The XTTS v2 folder that coqui's own download left (Hugging Face cache, or the older tts data dir)."""
    legacy = coqui_data_dir() / XTTS_MODEL_NAME.replace("/", "--")
    if all((legacy / f).is_file() for f in MODEL_FILES):
        return legacy
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        return None
    try:
        folder = Path(snapshot_download(XTTS_REPO_ID, local_files_only=True, cache_dir=hf_hub_cache()))
    except Exception:  # not downloaded (LocalEntryNotFoundError), or an unreadable cache: either way, none here
        return None
    return folder if all((folder / f).is_file() for f in MODEL_FILES) else None


def check_model_dir(folder: Path) -> Path:
    """Raise ModelError naming what is missing unless `folder` looks like an XTTS model folder."""
    if not folder.exists():
        raise ModelError(f"XTTS model folder {folder} does not exist; pass --model-dir with a folder holding model.pth")
    if not folder.is_dir():
        raise ModelError(f"XTTS model path {folder} is not a folder; pass the folder that holds model.pth")
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(
            f"{folder} is not an XTTS model folder: missing {', '.join(missing)}; "
            "it needs config.json, model.pth and vocab.json"
        )
    return folder


def _xtts_folder(settings: Settings) -> tuple[Path | None, str]:
    if settings.model_dir is not None:
        return check_model_dir(settings.model_dir), f"model folder {settings.model_dir}"
    found = coqui_store_model()
    if found is not None:
        return found, f"coqui's downloaded XTTS v2 ({found})"
    return None, "no XTTS model found (pass --model-dir, set SPEAKCLI_XTTS_DIR, or run `speakcli download`)"


def choose_engine(settings: Settings) -> EngineSpec:
    """Pick the engine the settings ask for, without importing torch or TTS."""
    if settings.engine == "piper":
        return EngineSpec("piper", note="piper (bundled voice en_US-joe-medium)")
    if settings.engine == "xtts":
        folder, where = _xtts_folder(settings)
        if folder is None:
            raise ModelError(where[0].upper() + where[1:])
        if not xtts_installed():
            raise ModelError("the xtts engine needs coqui-tts and torch; pip install 'speakcli[xtts]'")
        return EngineSpec("xtts", folder, settings.device, note=f"xtts from {where}", cache_dir=settings.cache_dir)
    # auto: XTTS when a model and the packages are here, else the bundled voice.
    folder, where = _xtts_folder(settings)
    if folder is not None and xtts_installed():
        return EngineSpec("xtts", folder, settings.device, note=f"xtts from {where}", cache_dir=settings.cache_dir)
    why = where if folder is None else "coqui-tts is not installed (pip install 'speakcli[xtts]')"
    return EngineSpec("piper", note=f"piper (bundled voice en_US-joe-medium): {why}")


def create_engine(spec: EngineSpec) -> Engine:
    if spec.name == "piper":
        from speakcli.engines.piper import PiperEngine

        return PiperEngine()
    if spec.name == "xtts":
        from speakcli.engines.xtts import XttsEngine
        from speakcli.latents import LatentCache

        assert spec.model_dir is not None
        cache = LatentCache(spec.cache_dir / "latents", warn=log.warning) if spec.cache_dir else None
        return XttsEngine(spec.model_dir, device=spec.device, cache=cache)
    raise ModelError(f"unknown engine {spec.name!r}")


_lock = threading.Lock()
_engines: dict[EngineSpec, Engine] = {}


def shared_engine(spec: EngineSpec) -> Engine:
    """The process's one engine for `spec`, created on first use; the synthesis worker loads it, once."""
    with _lock:
        engine = _engines.get(spec)
        if engine is None:
            engine = create_engine(spec)
            _engines[spec] = engine
        return engine
