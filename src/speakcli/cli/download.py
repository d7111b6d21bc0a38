"""`speakcli download`: fetch XTTS v2 with coqui's licence prompt, into coqui's store or a folder you choose."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

from speakcli.cli import options as o

EXAMPLES = """
speakcli download                         # into coqui's store (the Hugging Face cache)
speakcli download --model-dir ~/xtts_v2   # into a folder of your choice, then:
speakcli say "Hello." --model-dir ~/xtts_v2
COQUI_TOS_AGREED=1 speakcli download      # accept the licence without the prompt
"""


def download(
    model_dir: Annotated[
        Path | None,
        o.setting(
            "model_dir",
            "--model-dir",
            "--to",
            help="Download into this folder (made if missing) instead of coqui's store; "
            "use it later with --model-dir or SPEAKCLI_XTTS_DIR.",
        ),
    ] = None,
    debug: o.Debug = False,
) -> None:
    """Download XTTS v2 (needs a network); asks you to accept the Coqui Public Model License."""
    from speakcli.engines import MODEL_FILES, XTTS_MODEL_NAME, coqui_store_model, xtts_installed
    from speakcli.errors import ModelError
    from speakcli.settings import load_settings

    dest = load_settings({"model_dir": model_dir}).model_dir  # SPEAKCLI_XTTS_DIR or the config may name it
    if not xtts_installed():
        raise ModelError("downloading XTTS needs coqui-tts and torch; pip install 'speakcli[xtts]'")
    found = coqui_store_model() if dest is None else (dest if all((dest / f).is_file() for f in MODEL_FILES) else None)
    if found is not None:
        print(f"speakcli: XTTS v2 is already downloaded: {found}", file=sys.stderr)
        return
    from TTS.utils.manage import ModelManager

    try:
        if dest is None:
            # coqui asks for the CPML licence on stdin here, or takes COQUI_TOS_AGREED=1.
            model_path, _, _ = ModelManager(progress_bar=True).download_model(XTTS_MODEL_NAME)
            where = Path(model_path).parent if Path(model_path).is_file() else Path(model_path)
        else:
            where = _download_to(ModelManager(progress_bar=True), dest)
    except EOFError:
        raise ModelError(
            "download stopped: the licence question needs an answer on a terminal; "
            "run it in a terminal, or set COQUI_TOS_AGREED=1 to accept the licence"
        ) from None
    except RuntimeError as exc:  # coqui's "You must agree to the terms of service"
        raise ModelError(f"download stopped: {exc}; accept the licence (or set COQUI_TOS_AGREED=1)") from None
    except Exception as exc:
        # The whole reason, on one line (the error boundary joins its lines): an offline or proxy error says
        # which setting to change.
        raise ModelError(
            f"could not download XTTS v2 ({type(exc).__name__}: {exc}); check your connection and run it again"
        ) from None
    hint = "" if dest is None else f"; use it with --model-dir {where} or SPEAKCLI_XTTS_DIR={where}"
    print(f"speakcli: downloaded XTTS v2 to {where}{hint}", file=sys.stderr)


def _download_to(manager: object, dest: Path) -> Path:
    """The XTTS v2 files coqui would fetch, into `dest` itself, after coqui's own licence check and prompt."""
    from huggingface_hub import snapshot_download

    item = manager.models_dict["tts_models"]["multilingual"]["multi-dataset"]["xtts_v2"]  # type: ignore[attr-defined]
    dest.mkdir(parents=True, exist_ok=True)
    if not manager.tos_agreed(item, dest) and not manager.ask_tos(dest):  # type: ignore[attr-defined]
        raise RuntimeError("you must agree to the terms of service to use this model")
    snapshot_download(
        item["repo_id"], allow_patterns=item.get("allow"), ignore_patterns=item.get("ignore"), local_dir=dest
    )
    return dest
