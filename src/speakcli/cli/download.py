"""`speakcli download`: fetch XTTS v2 with coqui's own downloader and licence prompt (needs a network)."""

from __future__ import annotations

import sys


def download() -> None:
    """Download XTTS v2 into coqui's model store; asks you to accept the Coqui Public Model License."""
    from speakcli.engines import XTTS_MODEL_NAME, coqui_store_model, xtts_installed
    from speakcli.errors import ModelError

    if not xtts_installed():
        raise ModelError("downloading XTTS needs coqui-tts and torch; pip install 'speakcli[xtts]'")
    found = coqui_store_model()
    if found is not None:
        print(f"speakcli: XTTS v2 is already downloaded: {found}", file=sys.stderr)
        return
    from TTS.utils.manage import ModelManager

    try:
        # coqui asks for the CPML licence on stdin here, or takes COQUI_TOS_AGREED=1.
        model_path, _, _ = ModelManager(progress_bar=True).download_model(XTTS_MODEL_NAME)
    except (EOFError, RuntimeError) as exc:
        raise ModelError(f"download stopped: {exc}; accept the licence (or set COQUI_TOS_AGREED=1)") from None
    except Exception as exc:
        raise ModelError(
            f"could not download XTTS v2 ({type(exc).__name__}: {str(exc)[:160]}); "
            "check your connection, or pass --model-dir with a local model folder"
        ) from None
    print(f"speakcli: downloaded XTTS v2 to {model_path}", file=sys.stderr)
