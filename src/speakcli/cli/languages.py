"""`speakcli languages`: the languages the engine in use speaks, read from its config without loading a model."""

from __future__ import annotations

import json

from speakcli.cli import options as o

EXAMPLES = """
speakcli languages                        # the engine --engine auto picks
speakcli languages --engine xtts --model-dir ~/models/xtts_v2
speakcli languages --json | jq -r '.languages[].code'
"""


def languages(
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    voices_dir: o.VoicesDir = None,
    as_json: o.Json = False,
    debug: o.Debug = False,
) -> None:
    """List the languages the engine in use speaks (codes for --language), without loading its model."""
    from speakcli.report import languages as engine_languages
    from speakcli.settings import load_settings

    found = engine_languages(load_settings(o.engine_flags(engine, model_dir, None, voices_dir)))
    if as_json:
        print(json.dumps(found, indent=2))
        return
    print(f"{found['engine']}: {found['note']}")
    for lang in found["languages"]:
        print(f"  {lang['code']:<4} {lang['name']}")
