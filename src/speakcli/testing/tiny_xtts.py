"""A randomly initialised XTTS v2 model folder in the real layout, for tests and benchmarks (torch, TTS imported lazily)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

XTTS_LANGUAGES = [
    "en",
    "es",
    "fr",
    "de",
    "it",
    "pt",
    "pl",
    "tr",
    "ru",
    "nl",
    "cs",
    "ar",
    "zh-cn",
    "hu",
    "ko",
    "ja",
    "hi",
]
_CORPUS = [
    "hello world this is a small corpus for a tiny tokenizer",
    "the quick brown fox jumps over the lazy dog",
    "speakcli speaks every line of a file, in order, once",
    "abcdefghijklmnopqrstuvwxyz 0123456789 .,;:!?'-",
    "bonjour le monde, hallo welt, hola mundo, ciao mondo",
]


def _train_vocab(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    special = ["[STOP]", "[UNK]", "[SPACE]", "[START]"] + [f"[{lang}]" for lang in XTTS_LANGUAGES]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(_CORPUS * 20, trainers.BpeTrainer(vocab_size=300, special_tokens=special))
    tok.save(str(path))


def build_tiny_xtts(folder: Path, *, full_size: bool = False, max_audio_tokens: int = 24, seed: int = 0) -> Path:
    """Write config.json, model.pth and vocab.json for a random XTTS; `full_size` uses the real v2 GPT dims."""
    import torch
    from TTS.tts.configs.xtts_config import XttsArgs, XttsConfig
    from TTS.tts.models.xtts import Xtts

    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    _train_vocab(folder / "vocab.json")
    width, layers, heads = (1024, 30, 16) if full_size else (64, 2, 4)
    args = XttsArgs(
        gpt_layers=layers,
        gpt_n_model_channels=width,
        gpt_n_heads=heads,
        gpt_max_audio_tokens=max_audio_tokens,
        gpt_max_text_tokens=402,
        gpt_max_prompt_tokens=70,
        gpt_num_audio_tokens=1026,
        gpt_start_audio_token=1024,
        gpt_stop_audio_token=1025,
        gpt_code_stride_len=1024,
        gpt_use_masking_gt_prompt_approach=True,
        gpt_use_perceiver_resampler=True,
        decoder_input_dim=width,
        d_vector_dim=512,
        input_sample_rate=22050,
        output_sample_rate=24000,
        output_hop_length=256,
        tokenizer_file=str(folder / "vocab.json"),
    )
    config = XttsConfig(model_args=args, languages=list(XTTS_LANGUAGES))
    model = Xtts(config)
    from TTS.tts.layers.xtts.tokenizer import VoiceBpeTokenizer

    model.tokenizer = VoiceBpeTokenizer(vocab_file=str(folder / "vocab.json"))
    model.init_models()
    # Random weights emit the stop token by chance (about 1 in 1000 a step), so lengths would vary run to run:
    # forbid it, so every utterance runs to gpt_max_audio_tokens and tests can count on its length.
    with torch.no_grad():
        model.gpt.mel_head.bias[args.gpt_stop_audio_token] = -1e4
        # Trained norms are not the identity that initialisation gives; with identity norms, dropping one of the
        # GPT's two final norms (GPT-2's ln_f, then coqui's final_norm) would change nothing and go unnoticed.
        for norm in model.gpt.modules():
            if isinstance(norm, torch.nn.LayerNorm):
                norm.weight.add_(0.2 * torch.randn_like(norm.weight))
                norm.bias.add_(0.2 * torch.randn_like(norm.bias))
    # The real v2 config names no tokenizer file: load_checkpoint finds vocab.json beside the weights.
    config.model_args.tokenizer_file = ""
    torch.save({"model": model.state_dict()}, folder / "model.pth")
    config_dict = config.to_dict()
    (folder / "config.json").write_text(json.dumps(config_dict, indent=2))
    return folder


def add_builtin_speaker(folder: Path, name: str, clip: Path, engine: Any = None) -> None:
    """Write speakers_xtts.pth with one speaker whose latents come from `clip` (as real v2 folders ship); `engine`,
    an XttsEngine already loaded from `folder`, saves loading it again."""
    import torch

    from speakcli.engines.xtts import XttsEngine

    latent, embedding = (engine or XttsEngine(folder, device="cpu")).compute_latents((clip,))
    speakers = {name: {"gpt_cond_latent": torch.from_numpy(latent), "speaker_embedding": torch.from_numpy(embedding)}}
    torch.save(speakers, folder / "speakers_xtts.pth")


def load_coqui_xtts(folder: Path) -> Any:
    """An Xtts loaded by coqui's own code alone, untouched by speakcli: what a coqui user has (the reference)."""
    from TTS.tts.configs.xtts_config import XttsConfig
    from TTS.tts.models.xtts import Xtts

    config = XttsConfig()
    config.load_json(str(folder / "config.json"))
    model = Xtts(config)
    model.load_checkpoint(config, checkpoint_dir=str(folder), use_deepspeed=False, eval=True)
    return model
