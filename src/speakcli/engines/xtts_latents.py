"""XTTS speaker latents for cloned voices: keyed by clip contents and model identity, kept in memory and on disk."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.engines.base import Voice
from speakcli.errors import VoiceError
from speakcli.latents import CacheKey, LatentCache, Latents, file_digest, weights_fingerprint

# Computes (gpt_cond_latent, speaker_embedding) from clips in a fixed order; needs the loaded model.
Compute = Callable[[tuple[Path, ...]], tuple[np.ndarray, np.ndarray]]


class XttsLatents:
    """The latents of cloned voices for one model folder: computed once, then reused from memory or the cache."""

    def __init__(self, model_dir: Path, params: dict[str, Any], cache: LatentCache | None = None) -> None:
        self.model_dir = model_dir
        self.params = dict(params)  # what besides the audio decides the latents: part of their key
        self.cache = cache
        self.computed = 0  # how many times latents were computed (not found in memory or the cache)
        self._model_id: str | None = None
        self._digests: dict[tuple[str, int, int], str] = {}
        self._memory: dict[CacheKey, tuple[Any, Any]] = {}

    def model_id(self) -> str:
        """Identity of the model for the cache: its config, a weights fingerprint, and coqui's version."""
        if self._model_id is None:
            from importlib import metadata

            try:
                coqui = metadata.version("coqui-tts")
            except metadata.PackageNotFoundError:
                coqui = "unknown"
            config = file_digest(self.model_dir / "config.json")
            weights = weights_fingerprint(self.model_dir / "model.pth")
            self._model_id = f"xtts:{config[:16]}:{weights[:16]}:coqui-{coqui}"
        return self._model_id

    def _digest(self, clip: Path) -> str:
        st = clip.stat()
        memo = (str(clip.resolve()), st.st_mtime_ns, st.st_size)
        if memo not in self._digests:
            self._digests[memo] = file_digest(clip)
        return self._digests[memo]

    def key(self, clips: tuple[Path, ...]) -> CacheKey:
        try:
            digests = [self._digest(c) for c in clips]
        except OSError as exc:
            raise VoiceError(f"cannot read reference clip ({exc}); check the voice's files") from None
        return CacheKey.build(digests, self.model_id(), self.params)

    def cached(self, voice: Voice) -> bool:
        """Whether fresh latents for this cloned voice are on disk for this model."""
        return bool(voice.is_clone and self.cache is not None and self.cache.has(self.key(voice.clips)))

    def ensure(self, voice: Voice, compute: Compute, force: bool = False) -> str:
        """Compute and cache a cloned voice's latents unless fresh ones exist: 'computed' or 'cached'."""
        key = self.key(voice.clips)
        if not force and (key in self._memory or (self.cache is not None and self.cache.get(key) is not None)):
            return "cached"
        self._memory.pop(key, None)
        self.get(voice, compute, key, force=True)
        return "computed"

    def get(self, voice: Voice, compute: Compute, key: CacheKey | None = None, force: bool = False) -> tuple[Any, Any]:
        """The voice's latents as torch tensors: from memory, else the cache, else computed (and cached)."""
        import torch

        key = key or self.key(voice.clips)
        if not force and key in self._memory:
            return self._memory[key]
        cached = None if force or self.cache is None else self.cache.get(key)
        if cached is None:
            # Clips in content order, so the latents match the order-free key (a rename changes nothing).
            latent, embedding = compute(tuple(sorted(voice.clips, key=self._digest)))
            self.computed += 1
            cached = Latents(latent, embedding)
            if self.cache is not None:
                self.cache.put(key, cached)
        pair = (torch.from_numpy(cached.gpt_cond_latent), torch.from_numpy(cached.speaker_embedding))
        self._memory[key] = pair
        return pair
