"""`speakcli devices`: the audio outputs speech can be played on (for --output-device)."""

from __future__ import annotations

import json

from speakcli.cli import options as o

EXAMPLES = """
speakcli devices                          # pick one, then:
speakcli say "Hello." --output-device USB # by part of its name (or its index)
speakcli devices --json | jq -r '.[] | select(.default) | .name'
"""


def devices(as_json: o.Json = False, debug: o.Debug = False) -> None:
    """List the audio outputs speech can be played on: index, name, host API, and the default."""
    from speakcli.errors import AudioDeviceError, Hint
    from speakcli.report import devices as output_devices

    found = output_devices()
    if not found:
        raise AudioDeviceError("no audio output device found; start a sound server", hint=Hint.WRITE_FILE)
    if as_json:
        print(json.dumps(found, indent=2))
        return
    for d in found:
        default = "  (default)" if d["default"] else ""
        print(f"{d['index']:>3}  {d['name']}  [{d['hostapi']}, {d['channels']} ch]{default}")
