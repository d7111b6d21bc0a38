"""The XTTS v2 engine on coqui-tts; it and its xtts_* helpers are the only modules that import torch or TTS."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speakcli.engines.base import Capabilities, Sentence, SpeakerLatents, SynthesisOptions, Voice
from speakcli.engines.xtts_latents import XttsLatents
from speakcli.engines.xtts_store import check_model_dir
from speakcli.errors import Hint, ModelError, SynthesisError, VoiceError
from speakcli.latents import LatentCache
from speakcli.refaudio import read_reference
from speakcli.text import base_language, char_limit

if TYPE_CHECKING:
    from speakcli.engines.xtts_sentence import XttsSentence

log = logging.getLogger("speakcli")

REF_SAMPLE_RATE = 22050  # XTTS conditions on 22.05 kHz audio (16 kHz for the speaker encoder)
MAX_TEXT_TOKENS = 400  # coqui asserts below gpt_max_text_tokens (402)


def _lang(language: str) -> str:
    base = base_language(language)
    return "zh-cn" if base == "zh" else base  # coqui's code for Chinese


def _fold_weight_norm(module: Any) -> None:
    """Bake the decoder's weight-norm parametrisations into plain weights: coqui leaves them on, so every decode
    (every streamed chunk) recomputes each weight from its norm and direction; the output is the same."""
    from torch.nn.utils import parametrize

    for layer in list(module.modules()):
        if parametrize.is_parametrized(layer, "weight"):
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=True)


def _missing_package(exc: ImportError) -> str:
    """The top-level package an ImportError is about, also when coqui re-raised it with its own message."""
    err: BaseException | None = exc
    while err is not None:
        name = getattr(err, "name", None)
        if name:
            return str(name).split(".")[0]
        err = err.__cause__
    return str(exc)


def torch_pair(latents: SpeakerLatents) -> tuple[Any, Any]:
    """A voice's latents as the torch tensors XTTS takes (copies: the arrays stay the caller's)."""
    import torch

    return torch.from_numpy(latents.gpt_cond_latent.copy()), torch.from_numpy(latents.speaker_embedding.copy())


def _read_config(path: Path) -> tuple[dict[str, Any], int, list[str], dict[str, Any]]:
    """config.json's parts speakcli uses: (the JSON, output sample rate, languages, latent parameters).

    Raises ModelError naming the file for invalid JSON and for JSON of the wrong shape, so a damaged
    folder is a model error (exit 4) here, not a crash later.
    """
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not valid JSON ({exc}); the model folder is corrupt") from None
    try:
        if not isinstance(config, dict):
            raise ValueError(f"it holds a {type(config).__name__}, not an object")
        args = config.get("model_args", {})
        if not isinstance(args, dict):
            raise ValueError("model_args is not an object")
        languages = config.get("languages")
        if not isinstance(languages, list) or not languages or not all(isinstance(x, str) for x in languages):
            raise ValueError("languages is not a list of language codes")
        rate = args.get("output_sample_rate", 24000)
        params = {
            "sample_rate": REF_SAMPLE_RATE,
            "gpt_cond_len": config.get("gpt_cond_len", 12),
            "gpt_cond_chunk_len": config.get("gpt_cond_chunk_len", 4),
            "max_ref_len": config.get("max_ref_len", 10),
        }
        for k, v in [("output_sample_rate", rate), *params.items()]:
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{k} is {v!r}, not a positive whole number")
        params["sound_norm_refs"] = bool(config.get("sound_norm_refs", False))
    except ValueError as exc:
        raise ModelError(f"{path} is not an XTTS v2 config ({exc}); the model folder is corrupt") from None
    return config, rate, list(languages), params


class XttsEngine:
    """XTTS v2 loaded from a model folder through coqui's own `Xtts` + `load_checkpoint` path."""

    name = "xtts"
    capabilities = Capabilities(cloning=True, streaming=True, builtin_speakers=True, batching=True)

    def __init__(
        self, model_dir: Path, device: str = "auto", cache: LatentCache | None = None, precision: str = "auto"
    ) -> None:
        self.model_dir = check_model_dir(Path(model_dir))
        self.requested_device = device
        self.device = "cpu"
        self.requested_precision = precision
        self.precision = "fp32"  # the one in use, once loaded
        self.decoder_precision = "fp32"  # the HiFi-GAN's, once loaded (see xtts_precision.decoder_precision)
        self._config_json, self._sample_rate, self._languages, self._latent_params = _read_config(
            self.model_dir / "config.json"
        )
        self._model: Any = None  # coqui's Xtts, less its GPT's transformer blocks
        self._gpt: Any = None  # FastGpt: the GPT's transformer, at self.precision
        self._config: Any = None
        self.latents = XttsLatents(self.model_dir, self._latent_params, cache)

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    def languages(self) -> list[str]:
        return ["zh" if lang == "zh-cn" else lang for lang in self._languages]

    def max_chars(self, language: str) -> int:
        return char_limit(_lang(language))

    def _pick_device(self) -> str:
        import torch

        want = self.requested_device
        if want == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if want.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {want!r} asked for, but CUDA is not available here", hint=Hint.DEVICE_CPU)
        return want

    def load(self) -> None:
        if self._model is not None:
            return
        try:
            import torch
            from TTS.tts.configs.xtts_config import XttsConfig
            from TTS.tts.models.xtts import Xtts
        except ImportError as exc:
            raise ModelError(
                f"the xtts engine needs coqui-tts and torch ({exc}); pip install 'speakcli[xtts]'"
            ) from None
        # coqui logs a warning per long sentence; we split text ourselves, so keep stderr clean.
        logging.getLogger("TTS").setLevel(logging.ERROR)
        try:
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()
        except ImportError:  # pragma: no cover - transformers comes with coqui-tts
            pass
        self.device = self._pick_device()
        from speakcli.engines.xtts_gpt import FastGpt
        from speakcli.engines.xtts_precision import check_precision, decoder_precision, resolve_precision

        precision = resolve_precision(self.requested_precision, self.device)
        check_precision(precision, self.device)  # before the weights are read: a refusal costs nothing
        config = XttsConfig()
        try:
            config.load_json(str(self.model_dir / "config.json"))
            model = Xtts(config)
            model.load_checkpoint(config, checkpoint_dir=str(self.model_dir), use_deepspeed=False, eval=True)
        except Exception as exc:
            raise ModelError(
                f"cannot load the XTTS model in {self.model_dir} ({type(exc).__name__}: {str(exc)[:200]}); "
                "the folder is corrupt or not XTTS v2: download it again"
            ) from None
        model.to(torch.device(self.device))
        try:
            # FastGpt takes coqui's transformer blocks one by one, so the two copies never all coexist.
            self._gpt = FastGpt(model.gpt, precision, self.device, take=True)
        except ValueError as exc:
            raise ModelError(f"the XTTS model in {self.model_dir} is not XTTS v2 ({exc}); download it again") from None
        _fold_weight_norm(model.hifigan_decoder.waveform_decoder)
        self.decoder_precision = decoder_precision(precision, self.device)
        if self.decoder_precision == "bf16":  # the speaker encoder beside it stays fp32: latents are exact
            model.hifigan_decoder.waveform_decoder.to(torch.bfloat16)
        self._config, self._model, self.precision = config, model, precision

    def speakers(self) -> list[str]:
        """Built-in speakers (speakers_xtts.pth); empty before load or when the folder has none."""
        manager = getattr(self._model, "speaker_manager", None)
        return sorted(manager.speakers) if manager is not None else []

    def latent_shape(self) -> tuple[int | None, int, int]:
        """(rows, width) of the GPT conditioning latents and the speaker embedding's size that this model takes;
        rows is None when any number will do (no perceiver resampler, which always makes 32). From config.json."""
        args = self._config_json.get("model_args", {})
        rows = 32 if args.get("gpt_use_perceiver_resampler", False) else None  # coqui's num_latents
        return rows, int(args.get("gpt_n_model_channels", 1024)), int(args.get("d_vector_dim", 512))

    def _check_latents(self, latents: SpeakerLatents) -> None:
        rows, width, dim = self.latent_shape()
        got = latents.gpt_cond_latent.shape[1:]
        if got[1] != width or (rows is not None and got[0] != rows):
            want = f"{rows if rows is not None else 'N'} x {width}"
            raise VoiceError(f"gpt_cond_latent is {got[0]} x {got[1]}; this model takes {want}")
        if latents.speaker_embedding.shape[1] != dim:
            raise VoiceError(
                f"speaker_embedding has {latents.speaker_embedding.shape[1]} values; this model takes {dim}"
            )

    def check_voice(self, voice: Voice | None) -> None:
        if voice is not None and voice.latents is not None:
            self._check_latents(voice.latents)
            return
        if voice is None or voice.is_clone:
            return
        if self._model is not None and voice.speaker not in self.speakers():
            known = ", ".join(self.speakers()[:8]) or "none in this model"
            raise VoiceError(
                f"voice {voice.name!r} is not a voice file, a saved voice, or a built-in speaker ({known})",
                hint=Hint.LIST_VOICES,
            )

    def max_reference_seconds(self) -> float:
        return float(self._latent_params["max_ref_len"])

    def latents_cached(self, voice: Voice) -> bool:
        return self.latents.cached(voice)

    def ensure_latents(self, voice: Voice, force: bool = False) -> str:
        return self.latents.ensure(voice, self.compute_latents, force)

    def compute_latents(self, clips: tuple[Path, ...]) -> tuple[np.ndarray, np.ndarray]:
        """(gpt_cond_latent, speaker_embedding) as coqui's get_conditioning_latents computes them, from soundfile."""
        import torch
        import torchaudio.functional as AF

        self.load()
        p = self._latent_params
        audios, embeddings = [], []
        with torch.inference_mode():
            for clip in clips:
                # Only the first max_ref_len seconds are used: read no more (an hour-long clip costs 10 s).
                samples, rate = read_reference(clip, p["max_ref_len"])
                if samples.size == 0:
                    raise VoiceError(f"reference clip {clip} is empty; record at least a few seconds of speech")
                audio = torch.from_numpy(samples).unsqueeze(0)
                if rate != REF_SAMPLE_RATE:
                    audio = AF.resample(audio, rate, REF_SAMPLE_RATE)
                audio = audio[:, : REF_SAMPLE_RATE * p["max_ref_len"]].to(self.device)
                if p["sound_norm_refs"]:
                    audio = audio / audio.abs().max().clamp_min(1e-8) * 0.75
                embeddings.append(self._model.get_speaker_embedding(audio, REF_SAMPLE_RATE))
                audios.append(audio)
            latent = self._model.get_gpt_cond_latents(
                torch.cat(audios, dim=-1),
                REF_SAMPLE_RATE,
                length=p["gpt_cond_len"],
                chunk_length=p["gpt_cond_chunk_len"],
            )
            embedding = torch.stack(embeddings).mean(dim=0)
        return latent.cpu().numpy(), embedding.cpu().numpy()

    def speaker_latents(self, voice: Voice) -> SpeakerLatents:
        self.load()
        latent, embedding = self._voice_latents(voice)
        return SpeakerLatents(latent.float().cpu().numpy(), embedding.float().cpu().numpy())

    def _voice_latents(self, voice: Voice) -> tuple[Any, Any]:
        if voice.latents is not None:
            self._check_latents(voice.latents)
            return torch_pair(voice.latents)
        if voice.is_clone:
            return self.latents.get(voice, self.compute_latents)
        self.check_voice(voice)
        entry = self._model.speaker_manager.speakers[voice.speaker]
        return entry["gpt_cond_latent"], entry["speaker_embedding"]

    def _fit(self, text: str, language: str) -> list[str]:
        """Halve `text` at a space until each part is under XTTS's token limit (number expansion can grow it)."""
        n = len(self._model.tokenizer.encode(text.strip().lower(), lang=language))
        if n < MAX_TEXT_TOKENS or " " not in text.strip():
            return [text]
        words = text.split(" ")
        mid = len(words) // 2
        return self._fit(" ".join(words[:mid]), language) + self._fit(" ".join(words[mid:]), language)

    def max_batch(self) -> int:
        from speakcli.engines.xtts_precision import default_max_batch

        return default_max_batch(self.device, self.precision)

    def begin(self, text: str, voice: Voice | None, options: SynthesisOptions) -> XttsSentence:
        """The sentence ready to step: its voice's latents (computed once, then cached) and its parts' tokens."""
        import torch

        from speakcli.engines.xtts_sentence import XttsSentence

        self.load()
        if voice is None:
            speakers = self.speakers()
            if not speakers:
                raise VoiceError("this XTTS model has no built-in speakers", hint=Hint.VOICE_CLIP)
            voice = Voice(name=speakers[0], speaker=speakers[0])
        with torch.inference_mode():
            latent, embedding = self._voice_latents(voice)
        language = _lang(options.language)
        model = self._model
        parts = []
        with self._errors(options.language), torch.inference_mode():
            for part in self._fit(text, language):
                tokens = model.tokenizer.encode(part.strip().lower(), lang=language.split("-")[0])  # as coqui does
                if len(tokens) >= model.args.gpt_max_text_tokens:
                    raise SynthesisError(
                        f"{part[:40]!r}... has more than {MAX_TEXT_TOKENS} text tokens; try shorter text"
                    )
                parts.append(torch.IntTensor(tokens).unsqueeze(0).to(model.device))
            return XttsSentence(model, self._gpt, parts, latent.to(model.device), embedding.to(model.device), options)

    def step(self, sentences: Sequence[Sentence]) -> None:
        import torch

        from speakcli.engines.xtts_sentence import XttsSentence, step

        mine = [s for s in sentences if isinstance(s, XttsSentence)]
        with torch.inference_mode():
            step(self._gpt, mine)

    def synthesize(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
        """One sentence alone: the batched path with a batch of one, so alone and batched are the same code."""
        sentence = self.begin(text, voice, options)
        try:
            while not sentence.done:
                self.step([sentence])
                yield from sentence.take()
            if sentence.error is not None:
                raise sentence.error
        finally:
            sentence.close()

    @contextlib.contextmanager
    def _errors(self, language: str) -> Iterator[None]:
        """coqui imports a language's text tools (pypinyin, cutlet...) only when that language is first used."""
        try:
            yield
        except ImportError as exc:
            package = _missing_package(exc)
            raise ModelError(
                f"XTTS needs the Python package {package!r} for language {language!r} and it is not "
                f"installed; pip install 'speakcli[xtts]' (or pip install {package})"
            ) from None
        except (RuntimeError, AssertionError, NotImplementedError) as exc:
            raise SynthesisError(f"XTTS failed ({exc}); try shorter text") from None
