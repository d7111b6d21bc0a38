"""The `info` event: one text-to-speech program listing every voice a request can name."""

from __future__ import annotations

from wyoming.event import Event
from wyoming.info import Attribution, Info, TtsProgram, TtsVoice

from speakcli import __version__
from speakcli.serving import Gateway

PROGRAM = "speakcli"
_ATTRIBUTION = Attribution(name="speakcli", url="")  # the protocol wants one; speakcli has no public home yet


def describe(gateway: Gateway) -> Event:
    """What `describe` answers; blocking (it reads the voices dirs), so call it off the event loop."""
    languages = gateway.languages()
    rows = {row.name: row for row in gateway.voices()}
    voices = []
    for name in gateway.voice_names() or ["default"]:
        row = rows.get(name)
        language = row.language if row is not None else None
        voices.append(
            TtsVoice(
                name=name,
                attribution=_ATTRIBUTION,
                installed=True,
                # Home Assistant shows a voice's description as its name in the voice picker (wyoming-piper's is
                # the voice's name and quality): the name, not the voice.toml's longer description.
                description=name,
                version=None,
                # A saved voice is listed under its own language (Home Assistant groups voices by language);
                # the engine can speak the others with it too.
                languages=[language] if language in languages else list(languages),
            )
        )
    program = TtsProgram(
        name=PROGRAM,
        attribution=_ATTRIBUTION,
        installed=True,
        description=f"speakcli text to speech ({gateway.engine_note})",
        version=__version__,
        voices=voices,
        supports_synthesize_streaming=True,
    )
    return Info(tts=[program]).event()
