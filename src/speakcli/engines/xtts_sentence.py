"""One XTTS sentence made a GPT step at a time: its parts' sequences, their latents, and the streamed decoder."""

from __future__ import annotations

import math
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F

from speakcli.engines.xtts_gpt import FastGpt, GptSequence, Sampling
from speakcli.errors import SynthesisError

if TYPE_CHECKING:
    from speakcli.engines.base import SynthesisOptions

STREAM_CHUNK_TOKENS = 20  # GPT codes a streamed decoder chunk takes, as coqui's inference_stream


def generator_for(seed: int | None, device: str) -> torch.Generator | None:
    """A random generator of its own for a seeded sentence; None (torch's global one) for an unseeded one."""
    if seed is None:
        return None
    gen = torch.Generator(device=device)
    gen.manual_seed(seed % 2**63)
    return gen


def sampling(options: SynthesisOptions) -> Sampling:
    """The options' sampling: their temperature, and coqui's defaults for what they leave unset (None)."""
    coqui = Sampling()
    return Sampling(
        temperature=options.temperature,
        top_k=coqui.top_k if options.top_k is None else options.top_k,
        top_p=coqui.top_p if options.top_p is None else options.top_p,
        repetition_penalty=coqui.repetition_penalty
        if options.repetition_penalty is None
        else options.repetition_penalty,
    )


class XttsSentence:
    """A sentence's parts (each under XTTS's text-token limit) generated one after another, each through FastGpt
    and the decoder: streamed, each chunk of latents goes through the streamed decoder (linear time, the same
    audio); else each part's latents are decoded at once when it ends.

    A step only generates; the decoding a step made due runs when the audio is taken, so a worker stepping several
    sentences hands each one's chunk on before it decodes the next one's.

    coqui's inference runs the GPT a second time over the generated codes to get their latents; the model is
    causal, so those equal the latents generation already computed (to 1e-6), and FastGpt keeps them instead.
    """

    def __init__(
        self,
        model: Any,
        gpt: FastGpt,
        parts: list[torch.Tensor],
        latent: torch.Tensor,
        embedding: torch.Tensor,
        options: SynthesisOptions,
    ) -> None:
        self.model, self.gpt = model, gpt
        self.parts = deque(parts)  # text tokens [1, n] of the parts not started
        self.latent, self.embedding = latent, embedding
        self.options = options
        self.sampling = sampling(options)
        self.generator = generator_for(options.seed, gpt.device)
        self.length_scale = 1.0 / max(options.speed, 0.05)
        self.sequence: GptSequence | None = None
        self.decoder: Any = None
        self.latents: list[torch.Tensor] = []  # this part's latents not yet decoded
        self._codes = self._made = 0  # this part's codes generated, samples made
        self._due = False  # a chunk (or the part's end) waits to be decoded
        self._audio: list[np.ndarray] = []
        self._error: BaseException | None = None
        self._next_part()

    @property
    def done(self) -> bool:
        return self.sequence is None

    @property
    def error(self) -> BaseException | None:
        return self._error

    def take(self) -> list[np.ndarray]:
        """Decode what the last step made due, and hand over the audio made since the last call."""
        self.settle()
        audio, self._audio = self._audio, []
        return audio

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self.close()

    def close(self) -> None:
        self.parts.clear()
        self.sequence, self.decoder, self.latents = None, None, []

    def _next_part(self) -> None:
        """Open the next part's sequence, or end the sentence."""
        self.sequence, self.decoder, self.latents = None, None, []
        self._codes = self._made = 0
        self._due = False
        if not self.parts:
            return
        self.sequence = self.gpt.sequence(self.latent, self.parts.popleft(), self.sampling, self.generator)
        if self.options.stream:
            from speakcli.engines.xtts_stream import StreamDecoder

            self.decoder = StreamDecoder(self.model.hifigan_decoder, self.embedding, length_scale=self.length_scale)

    def absorb(self, latent: torch.Tensor) -> None:
        """Take this step's latent; a full chunk (streamed) or the part's end is then due for decoding."""
        assert self.sequence is not None
        self.latents.append(latent)
        self._codes += 1
        streamed_chunk = self.decoder is not None and len(self.latents) == STREAM_CHUNK_TOKENS
        self._due = self.sequence.done or streamed_chunk

    def settle(self) -> None:
        """Decode what is due, and move on to the next part when this one has ended. A failure fails the sentence."""
        if not self._due or self.sequence is None:
            return
        self._due = False
        try:
            with torch.inference_mode():  # take() is called outside the engine's step
                self._decode_due(self.sequence.done)
        except (RuntimeError, AssertionError, NotImplementedError) as exc:
            self.fail(SynthesisError(f"XTTS failed while decoding ({exc}); try shorter text"))

    def _decode_due(self, ended: bool) -> None:
        if self.decoder is not None:
            audio = self.decoder.push(torch.stack(self.latents), final=ended)
            self._keep(self._at_rate(audio) if ended else audio)
            self.latents = []
        elif ended:
            self._keep(self._at_rate(self._decode_whole()))
        if ended:
            self._next_part()

    def _at_rate(self, last: np.ndarray) -> np.ndarray:
        """The part's last audio cut or padded with silence (a frame or two) so that the part is 1/speed as long as
        at 1.0: the decoder's resampling rounds down at each stage, which at speed 4 cut a 1 s part by 8% more."""
        if self.length_scale == 1.0:
            return last
        from speakcli.audio.stretch import fit_length
        from speakcli.engines.xtts_stream import decoded_samples

        target = round(decoded_samples(self.model.hifigan_decoder, self._codes) / self.options.speed)
        return fit_length(last, max(0, target - self._made))

    def _decode_whole(self) -> np.ndarray:
        latents = torch.stack(self.latents)[None]
        if math.floor(latents.shape[1] * self.length_scale) == 0:
            return np.zeros(0, np.float32)  # a code or two made faster than one frame: no audio, as streamed
        if self.length_scale != 1.0:
            latents = F.interpolate(latents.transpose(1, 2), scale_factor=self.length_scale, mode="linear")
            latents = latents.transpose(1, 2)
        from speakcli.engines.xtts_stream import decode_whole

        return decode_whole(self.model.hifigan_decoder, latents, self.embedding).reshape(-1).cpu().numpy()

    def _keep(self, audio: np.ndarray) -> None:
        if audio.size:
            self._made += audio.size
            self._audio.append(audio)


def step(gpt: FastGpt, sentences: list[XttsSentence]) -> None:
    """One GPT step for every unfinished sentence, together (decoding first what an earlier step made due and was
    not taken). A failure in the shared step fails every sentence in it; one in a sentence's own decoding fails
    that sentence alone."""
    for sentence in sentences:
        sentence.settle()
    live = [s for s in sentences if s.sequence is not None]
    if not live:
        return
    try:
        steps = gpt.step([s.sequence for s in live if s.sequence is not None])
    except (RuntimeError, AssertionError, NotImplementedError) as exc:
        failure = SynthesisError(f"XTTS failed ({exc}); try shorter text")
        for sentence in live:
            sentence.fail(failure)
        return
    for sentence, (_code, latent) in zip(live, steps, strict=True):
        sentence.absorb(latent)
