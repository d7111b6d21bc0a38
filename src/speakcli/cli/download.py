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
    from speakcli.engines.xtts_store import download_xtts
    from speakcli.settings import load_settings

    dest = load_settings({"model_dir": model_dir}).model_dir  # SPEAKCLI_XTTS_DIR or the config may name it
    done = download_xtts(dest)
    if done.already:
        print(f"speakcli: XTTS v2 is already downloaded: {done.folder}", file=sys.stderr)
        return
    hint = "" if dest is None else f"; use it with --model-dir {done.folder} or SPEAKCLI_XTTS_DIR={done.folder}"
    print(f"speakcli: downloaded XTTS v2 to {done.folder}{hint}", file=sys.stderr)
