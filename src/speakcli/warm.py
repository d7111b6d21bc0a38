"""Warm starts, decided once for every front end: may a running server speak this request exactly as we would?"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from speakcli.remote import RemoteSource, RemoteSpeech, Unavailable, open_speech
from speakcli.settings import Settings

__all__ = ["RemoteSource", "RemoteSpeech", "Unavailable", "warm_speech"]

NO_SERVER_ENV = "SPEAKCLI_NO_SERVER"  # "1": never use a running server
API_KEY_ENV = "SPEAKCLI_API_KEY"
log = logging.getLogger("speakcli")


def _local_voice(voice: str) -> bool:
    # A file or folder is not something a server takes (it takes names only): as the library resolves a voice,
    # what looks like a path or names an existing one is spoken here.
    from speakcli.voices import AUDIO_EXTS

    path = Path(voice).expanduser()
    return "/" in voice or "\\" in voice or path.suffix.lower() in AUDIO_EXTS or path.exists()


def warm_speech(settings: Settings, text: str, *, ssml: bool | None = None, buffered: bool) -> RemoteSpeech | None:
    """`text` streamed from a running `speakcli serve` on this machine that speaks it as a local run with `settings`
    would; None when no server may (then speak locally, as if there were none).

    Stays local for `SPEAKCLI_NO_SERVER=1`, SSML (rendered by this process), a voice that is a file or folder, text
    longer than the server takes, or a server that wants a key when `SPEAKCLI_API_KEY` is unset. A server is used
    only when its advert is private to the user, its engine, model, device, precision, voices folder, pause and
    default voice match, and it proves it wrote the advert; any refusal (busy, a wrong key, an error) makes the run
    local. Costs a folder listing, a file read and a round trip; never imports an engine. Iterating the result may
    raise `Unavailable` (speak locally) or `StreamCutError`: see `RemoteSpeech`.
    """
    if os.environ.get(NO_SERVER_ENV) == "1":
        return None
    from speakcli.ssml import is_ssml

    if ssml or (ssml is None and is_ssml(text)) or (settings.voice is not None and _local_voice(settings.voice)):
        return None
    from speakcli.adverts import find_servers
    from speakcli.engines import choose_engine
    from speakcli.errors import SpeakError

    try:
        spec = choose_engine(settings)
    except SpeakError:
        return None  # the local run reports it
    key = os.environ.get(API_KEY_ENV) or None
    for advert in find_servers(spec, settings):
        if len(text) > advert.max_text or (advert.auth and not key):
            continue
        try:
            return open_speech(advert, text, settings, key, buffered=buffered)
        except Unavailable as exc:
            log.debug("not through %s: %s", advert.url, exc)  # quietly: the local run is what the user asked for
    return None


def running_server(settings: Settings) -> dict[str, object] | None:
    """What `info` says of a running `speakcli serve` a warm start would use: its URL and, when it proves itself and
    takes our key, its scheduler and queue; None when there is none."""
    from speakcli.adverts import find_servers
    from speakcli.engines import choose_engine
    from speakcli.errors import SpeakError
    from speakcli.remote import server_info

    try:
        spec = choose_engine(settings)
    except SpeakError:
        return None
    key = os.environ.get(API_KEY_ENV) or None
    for advert in find_servers(spec, settings):
        if advert.auth and not key:
            return {"url": advert.url, "note": "it wants an API key; set SPEAKCLI_API_KEY to see its state"}
        try:
            report = server_info(advert, key)
        except Unavailable as exc:
            log.debug("no report from %s: %s", advert.url, exc)
            continue
        return {"url": advert.url, "scheduler": report.get("scheduler"), "queue": report.get("queue")}
    return None
