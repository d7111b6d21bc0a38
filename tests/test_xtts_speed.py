"""XTTS speed work on the tiny model: linear-time streaming that matches the one-piece decode, GPT precision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import run_cli
from speakcli.engines.base import SynthesisOptions, Voice

pytestmark = [pytest.mark.xtts, pytest.mark.slow]

JOE = Path(__file__).parents[1] / "voices/joe/reference.wav"


def _engine(folder: Path, precision: str = "fp32") -> Any:
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(folder, device="cpu", precision=precision)
    engine.load()
    return engine


@pytest.fixture(scope="module")
def fp32(tiny_xtts_dir: Path) -> Any:
    return _engine(tiny_xtts_dir)


def _decoder(channels: int) -> Any:
    """XTTS v2's HiFi-GAN decoder with its real layer geometry (so the same receptive field) but few channels: fast."""
    import torch
    from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder

    torch.manual_seed(0)
    return HifiDecoder(decoder_input_dim=64, upsample_initial_channel_decoder=channels).eval()


@pytest.fixture(scope="module")
def small_decoder() -> Any:
    return _decoder(16)


@pytest.fixture(scope="module")
def decoder64() -> Any:
    # 64 channels: with 16 the far edges of the receptive field are so weak that 4 frames of context pass for 15
    return _decoder(64)


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - test) ** 2), 1e-30)))


def _stream(hifigan: Any, latents: Any, embedding: Any, speed: float, chunk: int) -> tuple[np.ndarray, list[int], int]:
    """Decode `latents` [1, n, C] chunk by chunk: (audio, decoder input lengths, context frames)."""
    from speakcli.engines.xtts_stream import StreamDecoder

    decoder = StreamDecoder(hifigan, embedding, length_scale=1.0 / speed)
    n = latents.shape[1]
    parts = [decoder.push(latents[0, k : k + chunk]) for k in range(0, n, chunk)]
    parts.append(decoder.push(latents[0, :0], final=True))
    return np.concatenate(parts), decoder.decoded_lengths, decoder.context


def _one_piece(hifigan: Any, latents: Any, embedding: Any, speed: float) -> np.ndarray:
    """What coqui's Xtts.inference makes of the same latents (its speed interpolation, then the whole decode)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        if speed != 1.0:
            latents = F.interpolate(latents.transpose(1, 2), scale_factor=1.0 / speed, mode="linear").transpose(1, 2)
        return hifigan(latents, g=embedding).reshape(-1).numpy()


@pytest.mark.parametrize("speed", [1.0, 1.3, 0.8])
def test_streamed_decode_equals_the_one_piece_decode_of_the_same_latents(decoder64: Any, speed: float) -> None:
    import torch

    torch.manual_seed(1)
    latents = torch.randn(1, 45, 64)
    embedding = torch.randn(1, 512, 1)
    whole = _one_piece(decoder64, latents, embedding, speed)
    with torch.inference_mode():
        streamed, lengths, _ = _stream(decoder64, latents, embedding, speed, chunk=8)
    assert len(lengths) >= 5  # really in pieces
    assert len(streamed) == len(whole)
    # Equal to rounding (about 135 dB): every sample is decoded with the decoder's whole receptive field around it
    # (4 frames of context instead of 15 give 79 dB here, none 30 dB).
    assert _snr_db(whole, streamed) > 110


def test_each_chunk_decodes_a_bounded_number_of_frames(small_decoder: Any) -> None:
    import torch

    latents = torch.randn(1, 240, 64)
    chunk = 20
    with torch.inference_mode():
        _, lengths, context = _stream(small_decoder, latents, torch.randn(1, 512, 1), 1.0, chunk)
    # A chunk of 20 latents is 20 * 4 * 24000 / 22050 = 87.1 decoder frames; with context on both sides:
    bound = 2 * context + int(np.ceil(chunk * 4 * 24000 / 22050)) + 1
    assert len(lengths) >= 12
    assert max(lengths) <= bound, lengths  # re-decoding from the start would reach 1044 frames by the end


def test_the_decoders_receptive_field_is_what_the_context_covers(small_decoder: Any) -> None:
    """Changing one input frame moves output samples only within `context` frames of it (and does move them)."""
    import torch

    from speakcli.engines.xtts_stream import receptive_frames, samples_per_frame

    gen = small_decoder.waveform_decoder
    context, hop = receptive_frames(gen), samples_per_frame(gen)
    torch.manual_seed(0)
    z = torch.randn(1, gen.conv_pre.in_channels, 80)
    g = torch.randn(1, 512, 1)
    with torch.inference_mode():
        base = gen(z, g=g).reshape(-1)
        z[:, :, 40] += 1.0
        moved = torch.nonzero((gen(z, g=g).reshape(-1) - base).abs() > 0).reshape(-1)
    assert hop == 256
    first, last = moved.min().item() / hop, moved.max().item() / hop
    # ... and reaches nearly as far as `context` (random weights: 11 to 12 frames either side), so it is not oversized.
    assert 40 - context <= first < 40 - (context - 5)
    assert 41 + (context - 5) < last <= 41 + context


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_each_precision_loads_and_speaks(tiny_xtts_dir: Path, precision: str) -> None:
    import torch

    from speakcli.engines.xtts_precision import quantized_layers

    engine = _engine(tiny_xtts_dir, precision)
    assert engine.precision == precision
    model = engine._model
    voice = Voice(name="joe", clips=(JOE,))
    for stream in (False, True):
        audio = np.concatenate(list(engine.synthesize("Hello there.", voice, SynthesisOptions(stream=stream))))
        assert len(audio) > 12000 and np.all(np.isfinite(audio)) and np.abs(audio).max() > 0
    layers = model.args.gpt_layers
    gpt_params = {p.dtype for p in model.gpt.gpt.parameters()}
    if precision == "int8":
        # attention in/out and the MLP's two layers of every block are dynamically quantised modules
        assert quantized_layers(model) == 4 * layers
    else:
        assert quantized_layers(model) == 0
        assert gpt_params == {torch.bfloat16 if precision == "bf16" else torch.float32}
    # The decoder and speaker encoder stay fp32 whatever the GPT's precision.
    assert {p.dtype for p in model.hifigan_decoder.parameters()} == {torch.float32}


def test_a_bad_precision_is_a_usage_error(tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    flag = run_cli("say", "Hi.", "--engine", "piper", "--precision", "fp8", "-o", str(out))
    env = run_cli("say", "Hi.", "--engine", "piper", "-o", str(out), env={"SPEAKCLI_PRECISION": "half"})
    for result, said in ((flag, "precision 'fp8'"), (env, "SPEAKCLI_PRECISION: precision = 'half'")):
        assert result.returncode == 2
        lines = result.stderr.decode().strip().splitlines()
        assert lines == [f"speakcli: error: {said} is unknown; use one of: auto, fp32, bf16, int8"]
    assert not out.exists()


def test_info_shows_the_precision_in_use(tiny_xtts_dir: Path) -> None:
    from speakcli.engines.xtts_precision import resolve_precision

    auto = json.loads(run_cli("info", "--json", "--device", "cpu").stdout)
    chosen = json.loads(run_cli("info", "--json", "--precision", "int8").stdout)
    assert auto["precision"] == "fp32"  # auto on a CPU: random weights say nothing about real-weight quality
    assert chosen["precision"] == "int8"
    assert resolve_precision("auto", "cuda") in ("bf16", "fp16")


def test_teacher_forcing_gives_the_logits_generation_saw(fp32: Any) -> None:
    import torch

    from speakcli.testing.xtts_teacher import next_code_logits

    model = fp32._model
    latent, _ = fp32.compute_latents((JOE,))
    cond = torch.from_numpy(latent)
    text = torch.IntTensor(model.tokenizer.encode("hello there", lang="en")).unsqueeze(0)
    with torch.inference_mode():
        codes, gen = model.gpt.generate(
            cond, text, do_sample=False, output_logits=True, return_dict_in_generate=True, repetition_penalty=1.0
        )
    seen = torch.cat([step[0:1] for step in gen.logits]).float()
    forced = next_code_logits(model, text, cond, codes[0])
    assert forced.shape == seen.shape
    torch.testing.assert_close(forced, seen, atol=1e-3, rtol=1e-3)


def test_teacher_forced_agreement_is_perfect_for_the_same_model_and_not_for_int8(
    tiny_xtts_dir: Path, fp32: Any
) -> None:
    import torch

    from speakcli.testing.xtts_teacher import agreement, sample_codes

    model = fp32._model
    cond = torch.from_numpy(fp32.compute_latents((JOE,))[0])
    text = torch.IntTensor(model.tokenizer.encode("hello there", lang="en")).unsqueeze(0)
    codes = sample_codes(model, text, cond)
    same = agreement(model, model, text, cond, codes)
    assert same.top1 == 1.0 and abs(same.kl) < 1e-6 and same.positions == codes.numel()
    int8 = agreement(model, _engine(tiny_xtts_dir, "int8")._model, text, cond, codes)
    assert int8.kl > 0.0 and 0.0 <= int8.top1 <= 1.0
