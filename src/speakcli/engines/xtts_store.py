"""Where XTTS v2 weights are (a folder the user names, or coqui's own download store; found without importing TTS),
and getting them with coqui's downloader."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from speakcli.errors import Hint, ModelError
from speakcli.settings import Settings

XTTS_MODEL_NAME = "tts_models/multilingual/multi-dataset/xtts_v2"
XTTS_REPO_ID = "tts-hub/XTTS-v2"
MODEL_FILES = ("config.json", "model.pth", "vocab.json")


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
        raise ModelError(f"XTTS model folder {folder} does not exist", hint=Hint.MODEL_DIR)
    if not folder.is_dir():
        raise ModelError(f"XTTS model path {folder} is not a folder; pass the folder that holds model.pth")
    missing = [f for f in MODEL_FILES if not (folder / f).is_file()]
    if missing:
        raise ModelError(
            f"{folder} is not an XTTS model folder: missing {', '.join(missing)}; "
            "it needs config.json, model.pth and vocab.json"
        )
    return folder


def find_xtts_folder(settings: Settings) -> tuple[Path | None, str]:
    if settings.model_dir is not None:
        return check_model_dir(settings.model_dir), f"model folder {settings.model_dir}"
    found = coqui_store_model()
    if found is not None:
        return found, f"coqui's downloaded XTTS v2 ({found})"
    return None, "no XTTS model found"


@dataclass(frozen=True)
class Download:
    """Where the XTTS v2 folder is after `download_xtts`, and whether it was there already (nothing fetched)."""

    folder: Path
    already: bool


def download_xtts(dest: Path | None = None) -> Download:
    """Fetch XTTS v2 with coqui's downloader into its store (None) or into the folder `dest`, after coqui's own
    licence check: it asks on stdin, or takes COQUI_TOS_AGREED=1. Needs a network; fails as a ModelError."""
    if not xtts_installed():
        raise ModelError("downloading XTTS needs coqui-tts and torch; pip install 'speakcli[xtts]'")
    found = coqui_store_model() if dest is None else (dest if all((dest / f).is_file() for f in MODEL_FILES) else None)
    if found is not None:
        return Download(found, already=True)
    from TTS.utils.manage import ModelManager

    try:
        manager = ModelManager(progress_bar=True)
        if dest is None:
            model_path = Path(manager.download_model(XTTS_MODEL_NAME)[0])
            folder = model_path.parent if model_path.is_file() else model_path
        else:
            folder = _download_to(manager, dest)
    except EOFError:
        raise ModelError(
            "download stopped: the licence question needs an answer on a terminal; "
            "run it in a terminal, or set COQUI_TOS_AGREED=1 to accept the licence"
        ) from None
    except RuntimeError as exc:  # coqui's "You must agree to the terms of service"
        raise ModelError(f"download stopped: {exc}; accept the licence (or set COQUI_TOS_AGREED=1)") from None
    except Exception as exc:
        # The whole reason, on one line (the error boundary joins its lines): an offline or proxy error says which
        # setting to change.
        raise ModelError(
            f"could not download XTTS v2 ({type(exc).__name__}: {exc}); check your connection and run it again"
        ) from None
    return Download(folder, already=False)


def _download_to(manager: Any, dest: Path) -> Path:
    """The XTTS v2 files coqui would fetch, into `dest` itself, after coqui's own licence check and prompt."""
    from huggingface_hub import snapshot_download

    item = manager.models_dict["tts_models"]["multilingual"]["multi-dataset"]["xtts_v2"]
    dest.mkdir(parents=True, exist_ok=True)
    if not manager.tos_agreed(item, dest) and not manager.ask_tos(dest):
        raise RuntimeError("you must agree to the terms of service to use this model")
    snapshot_download(
        item["repo_id"], allow_patterns=item.get("allow"), ignore_patterns=item.get("ignore"), local_dir=dest
    )
    return dest
