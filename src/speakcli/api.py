"""The Python API: `speak()` for one text, `Service` for many, over the same core the CLI drives."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import NamedTuple

import numpy as np

from speakcli.service import CloneResult, SpeechService, VoiceInfo
from speakcli.settings import load_settings


class Speech(NamedTuple):
    """Mono float32 samples in [-1, 1] and their sample rate: `audio, rate = speakcli.speak("Hi.")`."""

    audio: np.ndarray
    sample_rate: int


class Service:
    """One loaded engine for many texts: `with speakcli.Service() as tts: for chunk in tts.speak("Hi."): ...`.

    Settings are resolved as the CLI resolves them: an argument given here, else its `SPEAKCLI_*` environment
    variable, else the config file, else the default (`engine="auto"`: XTTS when a model is found, else the bundled
    Piper voice). The model loads on the first `speak` or `clone`, on one worker thread that runs requests in
    order; close the service (or use `with`) to stop it. Errors are `speakcli.errors.SpeakError`s.
    """

    def __init__(
        self,
        *,
        engine: str | None = None,
        voice: str | None = None,
        language: str | None = None,
        speed: float | None = None,
        model_dir: str | Path | None = None,
        device: str | None = None,
        temperature: float | None = None,
        pause: float | None = None,
        voices_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        output_device: str | None = None,
    ) -> None:
        settings = load_settings(
            {
                "engine": engine,
                "voice": voice,
                "language": language,
                "speed": speed,
                "model_dir": model_dir,
                "device": device,
                "temperature": temperature,
                "pause": pause,
                "voices_dir": voices_dir,
                "cache_dir": cache_dir,
                "output_device": output_device,
            }
        )
        self.core = SpeechService(settings)  # the service every front end drives, for what this class does not wrap

    @property
    def engine(self) -> str:
        """The engine in use: "xtts" or "piper"."""
        return self.core.engine.name

    @property
    def sample_rate(self) -> int:
        """The sample rate of the audio `speak` yields."""
        return self.core.sample_rate

    def speak(
        self,
        text: str,
        voice: str | None = None,
        *,
        language: str | None = None,
        speed: float | None = None,
        ssml: bool | None = None,
    ) -> Iterator[np.ndarray]:
        """Audio chunks (mono float32 at `sample_rate`) as they are made; stop iterating to cancel the rest.

        `voice` is a voice name, a built-in speaker, or a reference clip or folder (XTTS); `text` starting with
        `<speak>` is read as SSML, or any text with `ssml=True`. Bad arguments raise here, before any audio.
        """
        options = self.core.options(language, speed, stream=True)
        job = self.core.speak(text, self.core.voice(voice), options, ssml=ssml)
        return iter(job)

    def audio(
        self,
        text: str,
        voice: str | None = None,
        *,
        language: str | None = None,
        speed: float | None = None,
        ssml: bool | None = None,
    ) -> Speech:
        """The whole audio of `text` at once; the arguments are `speak`'s."""
        chunks = list(self.speak(text, voice, language=language, speed=speed, ssml=ssml))
        return Speech(np.concatenate(chunks) if chunks else np.zeros(0, np.float32), self.sample_rate)

    def voices(self) -> list[VoiceInfo]:
        """Every voice in the voices folders: name, clips, seconds, language, and whether its latents are cached."""
        return self.core.voices()

    def clone(
        self,
        references: Sequence[str | Path],
        name: str | None = None,
        *,
        language: str | None = None,
        description: str | None = None,
        force: bool = False,
    ) -> CloneResult:
        """Clone a voice from reference clips (XTTS): check them, compute and cache their latents; with `name`,
        save it in the voices folder for `speak(text, voice=name)`. `result.voice.name` names it either way;
        `result.warnings` lists what to know about the clips (clipped, longer than the model uses)."""
        return self.core.clone([Path(p).expanduser() for p in references], name, language, description, force)

    def close(self) -> None:
        """Stop the worker thread after the request in progress. Idempotent."""
        self.core.close()

    def __enter__(self) -> Service:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def speak(
    text: str,
    voice: str | None = None,
    out: str | Path | None = None,
    *,
    play: bool = False,
    force: bool = False,
    language: str | None = None,
    speed: float | None = None,
    ssml: bool | None = None,
    engine: str | None = None,
    model_dir: str | Path | None = None,
    device: str | None = None,
    output_device: str | None = None,
    server: bool = True,
) -> Speech:
    """Speak `text` in one call and return its audio; with `out`, also write it there; with `play=True`, play it.

    The format of `out` follows its extension (.wav, .flac, .ogg, .opus, .mp3, .pcm); an existing file is kept
    unless `force=True`, and a file is written whole or not at all. Settings not given come from the environment
    and config file, as for the CLI. While a `speakcli serve` runs on this machine with the same model and settings,
    the text is spoken through it (a warm start, as `speakcli say` does; `server=False` or `SPEAKCLI_NO_SERVER=1`
    keeps it here); else each call loads the engine: for many texts, open a `Service` once.
    """
    from speakcli.audio import check_output_path, write_audio

    if out is not None:
        check_output_path(out, force)  # before the model loads
    speech = None
    if server:
        speech = _through_server(text, voice, play, language, speed, ssml, engine, model_dir, device, output_device)
    if speech is None:
        with Service(engine=engine, model_dir=model_dir, device=device, output_device=output_device) as service:
            chunks = service.speak(text, voice, language=language, speed=speed, ssml=ssml)
            speech = _collect(chunks, service.sample_rate, play, service.core.settings.output_device)
    if out is not None:
        write_audio(out, speech.audio, speech.sample_rate)
    return speech


def _collect(chunks: Iterable[np.ndarray], rate: int, play: bool, output_device: str | None) -> Speech:
    """Every chunk, played as it comes with `play`."""
    collected: list[np.ndarray] = []
    if play:
        from speakcli.audio.playback import Player

        with Player(rate, output_device) as player:
            for chunk in chunks:
                player.write(chunk)
                collected.append(chunk)
    else:
        collected = list(chunks)
    return Speech(np.concatenate(collected) if collected else np.zeros(0, np.float32), rate)


def _through_server(
    text: str,
    voice: str | None,
    play: bool,
    language: str | None,
    speed: float | None,
    ssml: bool | None,
    engine: str | None,
    model_dir: str | Path | None,
    device: str | None,
    output_device: str | None,
) -> Speech | None:
    """The speech from a running server that speaks as this call would; None to speak here."""
    from speakcli.warm import Unavailable, warm_speech

    flags = {"engine": engine, "model_dir": model_dir, "device": device, "output_device": output_device}
    settings = load_settings({**flags, "voice": voice, "language": language, "speed": speed})
    remote = warm_speech(settings, text, ssml=ssml, buffered=not play)
    if remote is None:
        return None
    try:
        return _collect(remote, remote.sample_rate, play, settings.output_device)
    except Unavailable:
        return None  # cut before any of its audio went out: speak here instead
