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
    """XTTS v2's HiFi-GAN decoder with its real layer geometry (kernels, dilations, strides) but few channels: fast."""
    import torch
    from TTS.tts.layers.xtts.hifigan_decoder import HifiDecoder

    torch.manual_seed(0)
    return HifiDecoder(decoder_input_dim=64, upsample_initial_channel_decoder=channels).eval()


@pytest.fixture(scope="module")
def small_decoder() -> Any:
    return _decoder(16)


@pytest.fixture(scope="module")
def decoder64() -> Any:
    # 64 channels: with 16, samples far from an edge weigh so little that a layer losing them could pass unseen
    return _decoder(64)


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - test) ** 2), 1e-30)))


def _stream(hifigan: Any, latents: Any, embedding: Any, speed: float, chunk: int) -> tuple[np.ndarray, Any]:
    """Decode `latents` [1, n, C] chunk by chunk: (audio, the StreamDecoder)."""
    from speakcli.engines.xtts_stream import StreamDecoder

    decoder = StreamDecoder(hifigan, embedding, length_scale=1.0 / speed)
    n = latents.shape[1]
    parts = [decoder.push(latents[0, k : k + chunk]) for k in range(0, n, chunk)]
    parts.append(decoder.push(latents[0, :0], final=True))
    return np.concatenate(parts), decoder


def _one_piece(hifigan: Any, latents: Any, embedding: Any, speed: float) -> np.ndarray:
    """What coqui's Xtts.inference makes of the same latents (its speed interpolation, then the whole decode)."""
    import torch
    import torch.nn.functional as F

    with torch.inference_mode():
        if speed != 1.0:
            latents = F.interpolate(latents.transpose(1, 2), scale_factor=1.0 / speed, mode="linear").transpose(1, 2)
        return hifigan(latents, g=embedding).reshape(-1).numpy()


@pytest.mark.parametrize("speed", [1.0, 1.3, 0.8])
@pytest.mark.parametrize("chunk", [1, 8, 20])
def test_streamed_decode_equals_the_one_piece_decode_of_the_same_latents(
    decoder64: Any, speed: float, chunk: int
) -> None:
    import torch

    torch.manual_seed(1)
    latents = torch.randn(1, 45, 64)
    embedding = torch.randn(1, 512, 1)
    whole = _one_piece(decoder64, latents, embedding, speed)
    with torch.inference_mode():
        streamed, _ = _stream(decoder64, latents, embedding, speed, chunk)
    assert len(streamed) == len(whole)
    # Equal to float rounding (about 140 dB): every sample is computed once, from the same inputs as in the whole
    # decode; a layer that lost its left samples or cut its right ones at a chunk's edge gives 30-60 dB.
    assert _snr_db(whole, streamed) > 110


def test_a_chunk_costs_its_own_length_not_the_sentence_so_far(small_decoder: Any) -> None:
    import torch

    latents = torch.randn(1, 240, 64)
    g = torch.randn(1, 512, 1)
    with torch.inference_mode():
        _, streamed = _stream(small_decoder, latents, g, 1.0, chunk=20)
        _, whole = _stream(small_decoder, latents, g, 1.0, chunk=240)
    chunks = streamed.work  # input samples all HiFi-GAN layers read, each push
    assert len(chunks) >= 12
    # Every chunk but the first and last reads the same amount (re-decoding from the start would grow it 12-fold;
    # a layer that never trims its input grows it too) ...
    middle = chunks[1:-1]
    assert max(middle) <= 1.02 * min(middle), chunks
    # ... and all of them together read what the whole decode reads, plus each layer's few samples of overlap.
    assert sum(whole.work) < sum(streamed.work) <= 1.15 * sum(whole.work)


@pytest.mark.parametrize("scale", [24000 / 22050, 1 / 0.95, 4.0, 1 / 1.3])
@pytest.mark.parametrize("chunk", [1, 3, 50])
def test_latent_resampling_in_pieces_is_torchs_interpolate(scale: float, chunk: int) -> None:
    """Including short inputs, which torch copies unchanged when floor(n * scale) == n (a one-word line at
    speed 0.95, or two latents on the way to 24 kHz)."""
    import torch
    import torch.nn.functional as F

    from speakcli.engines.xtts_stream import LinearStage

    torch.manual_seed(0)
    for n in range(1, 50):
        x = torch.randn(3, n)
        if int(n * scale) == 0:
            continue
        stage = LinearStage(scale)
        parts = [stage.push(x[:, k : k + chunk]) for k in range(0, n, chunk)]
        for _ in parts:
            assert stage._buf is not None and stage._buf.shape[1] <= 24  # bounded by the piece, not the input
        got = torch.cat([*parts, stage.push(x[:, :0], final=True)], dim=1)
        torch.testing.assert_close(got, F.interpolate(x[None], scale_factor=scale, mode="linear")[0], atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def coqui(tiny_xtts_dir: Path) -> Any:
    """The same folder loaded by coqui's own code alone: the reference speakcli's GPT is held to."""
    from speakcli.testing.tiny_xtts import load_coqui_xtts

    return load_coqui_xtts(tiny_xtts_dir)


def _inputs(engine: Any, text: str = "hello there, how are you") -> tuple[Any, Any, Any]:
    """(conditioning latent, speaker embedding, text tokens) for Joe's clip and `text`."""
    import torch

    latent, embedding = (torch.from_numpy(x) for x in engine.compute_latents((JOE,)))
    tokens = torch.IntTensor(engine._model.tokenizer.encode(text, lang="en")).unsqueeze(0)
    return latent, embedding, tokens


def _coqui_codes(coqui: Any, latent: Any, tokens: Any, seed: int) -> Any:
    """The codes coqui's Xtts.inference samples (its own sampling defaults) for `seed`."""
    import torch

    torch.manual_seed(seed)
    with torch.inference_mode():
        return coqui.gpt.generate(
            cond_latents=latent,
            text_inputs=tokens,
            do_sample=True,
            top_p=0.85,
            top_k=50,
            temperature=0.75,
            num_return_sequences=1,
            num_beams=1,
            length_penalty=1.0,
            repetition_penalty=10.0,
            output_attentions=False,
        )[0]


def _coqui_latents(coqui: Any, latent: Any, tokens: Any, codes: Any) -> Any:
    """The latents [n, C] coqui's Xtts.inference recomputes for `codes` in its second GPT pass."""
    import torch

    with torch.inference_mode():
        return coqui.gpt(
            tokens,
            torch.tensor([tokens.shape[-1]]),
            codes[None],
            torch.tensor([codes.numel() * coqui.gpt.code_stride_len]),
            cond_latents=latent,
            return_attentions=False,
            return_latent=True,
        )[0]


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8"])
def test_each_precision_loads_and_speaks(tiny_xtts_dir: Path, precision: str) -> None:
    import torch

    engine = _engine(tiny_xtts_dir, precision)
    assert engine.precision == precision
    voice = Voice(name="joe", clips=(JOE,))
    for stream in (False, True):
        audio = np.concatenate(list(engine.synthesize("Hello there.", voice, SynthesisOptions(stream=stream))))
        assert len(audio) > 12000 and np.all(np.isfinite(audio)) and np.abs(audio).max() > 0
    # attention in/out and the MLP's two layers of every block run at the precision asked for
    kinds = {layer.kind for b in engine._gpt.blocks for layer in (b.qkv, b.proj, b.fc, b.out)}
    assert len(engine._gpt.blocks) == engine._model.args.gpt_layers
    from speakcli.engines.xtts_gpt import _mkldnn_ok, compute_dtype

    packed = "onednn" if _mkldnn_ok(compute_dtype(precision)) else "torch"  # oneDNN: x86 and ARM builds of torch
    assert kinds == ({"fbgemm int8"} if precision == "int8" else {f"{packed} {precision}"})
    assert len(engine._model.gpt.gpt.h) == 0  # coqui's own copy of the blocks is freed
    # The speaker encoder stays fp32 (latents are exact); the decoder runs at the precision the rule gives here.
    from speakcli.engines.xtts_precision import decoder_precision

    hifigan = engine._model.hifigan_decoder
    assert engine.decoder_precision == decoder_precision(precision, "cpu")
    want = torch.bfloat16 if engine.decoder_precision == "bf16" else torch.float32
    assert {p.dtype for p in hifigan.waveform_decoder.parameters()} == {want}
    assert {p.dtype for p in hifigan.speaker_encoder.parameters()} == {torch.float32}


@pytest.mark.parametrize("native", [True, False])
def test_the_decoder_runs_bf16_only_where_speed_was_chosen_and_the_cpu_computes_bf16(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from speakcli.engines import xtts_precision

    monkeypatch.setattr(xtts_precision, "native_bf16", lambda: native)
    fast = "bf16" if native else "fp32"
    assert [xtts_precision.decoder_precision(p, "cpu") for p in ("fp32", "bf16", "int8")] == ["fp32", fast, fast]
    assert xtts_precision.decoder_precision("bf16", "cuda") == "fp32"


def test_native_bf16_is_what_the_cpu_says() -> None:
    """Asked of the machine: the answer agrees with the kernel's list of this CPU's features."""
    from speakcli.engines.xtts_precision import native_bf16

    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.is_file() or "flags" not in cpuinfo.read_text():
        pytest.skip("no x86 /proc/cpuinfo to compare with")
    flags = set(next(line for line in cpuinfo.read_text().splitlines() if line.startswith("flags")).split())
    assert native_bf16() == bool(flags & {"avx512_bf16", "amx_bf16"})


def test_a_bf16_decoder_makes_the_fp32_decoders_audio_to_its_rounding(
    tiny_xtts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forced on any CPU (emulated where bf16 is not native): the same codes decoded in bf16, streamed and whole,
    are the fp32 decoder's audio to bf16 rounding, sample for sample."""
    from speakcli.engines import xtts_precision

    voice = Voice(name="joe", clips=(JOE,))
    made = {}
    for native in (False, True):
        monkeypatch.setattr(xtts_precision, "native_bf16", lambda native=native: native)
        engine = _engine(tiny_xtts_dir, "int8")
        assert engine.decoder_precision == ("bf16" if native else "fp32")
        for stream in (False, True):
            options = SynthesisOptions(stream=stream, seed=7)
            made[native, stream] = np.concatenate(list(engine.synthesize("Hello there, friend.", voice, options)))
    for stream in (False, True):
        want, got = made[False, stream], made[True, stream]
        assert len(got) == len(want) > 12000
        snr = 10 * np.log10(np.sum(want**2) / np.sum((got - want) ** 2))
        assert 30 < snr < 100, snr  # bf16's rounding: close, and not the fp32 decoder itself


def test_speakclis_gpt_samples_the_codes_coquis_samples(fp32: Any, coqui: Any) -> None:
    """Same seed, same codes: the lean decode loop says what coqui's transformers-based generate says, and its
    latents are the ones coqui's second GPT pass recomputes."""
    import torch

    from speakcli.engines.xtts_gpt import Sampling

    latent, _, tokens = _inputs(fp32)
    for seed in range(4):
        want = _coqui_codes(coqui, latent, tokens, seed)
        torch.manual_seed(seed)
        with torch.inference_mode():
            steps = list(fp32._gpt.generate(latent, tokens, Sampling()))
        got = torch.tensor([code for code, _ in steps])
        assert got.tolist() == want.tolist()
        second_pass = _coqui_latents(coqui, latent, tokens, want)
        torch.testing.assert_close(torch.stack([hidden for _, hidden in steps]), second_pass, atol=1e-5, rtol=1e-5)


def test_the_repetition_penalty_covers_the_prompts_placeholder_ids(fp32: Any, coqui: Any) -> None:
    """transformers penalises every id in input_ids, and coqui's prompt is placeholder ids (1): a code-1 logit is
    penalised from the first step. Made likely, code 1 shows whether speakcli's loop does the same."""
    import torch

    from speakcli.engines.xtts_gpt import FastGpt, Sampling

    latent, _, tokens = _inputs(fp32)
    head = coqui.gpt.mel_head.bias
    with torch.no_grad():
        head[1] += 6.0
    try:
        gpt = FastGpt(coqui.gpt, "fp32", "cpu")
        for seed in range(3):
            want = _coqui_codes(coqui, latent, tokens, seed)
            torch.manual_seed(seed)
            with torch.inference_mode():
                got = [code for code, _ in gpt.generate(latent, tokens, Sampling())]
            assert got == want.tolist()
    finally:
        with torch.no_grad():
            head[1] -= 6.0


@pytest.mark.parametrize("speed", [1.0, 1.3])
def test_a_whole_sentence_is_the_audio_coquis_inference_makes(fp32: Any, coqui: Any, speed: float) -> None:
    import torch

    latent, embedding, _ = _inputs(fp32)
    voice = Voice(name="joe", clips=(JOE,))
    text = "Hello there, how are you?"
    torch.manual_seed(7)
    ours = np.concatenate(list(fp32.synthesize(text, voice, SynthesisOptions(stream=False, speed=speed))))
    torch.manual_seed(7)
    at_one = sum(len(c) for c in fp32.synthesize(text, voice, SynthesisOptions(stream=False)))
    torch.manual_seed(7)
    with torch.inference_mode():
        theirs = coqui.inference(text, "en", latent, embedding, speed=speed, enable_text_splitting=False)["wav"]
    theirs = np.asarray(theirs, dtype=np.float32).reshape(-1)
    # Speed is a rate: 1/speed as long as at 1.0. coqui's decoder rounds its length down at each resampling stage;
    # speakcli's is the same audio, its end cut or padded with silence (a frame or two) to the rate's length.
    assert len(ours) == round(at_one / speed)
    assert abs(len(ours) - len(theirs)) <= 2 * 256
    n = min(len(ours), len(theirs))
    assert _snr_db(theirs[:n], ours[:n]) > 80  # the same audio, to float rounding


@pytest.mark.parametrize("speed", [1.0, 1.3, 0.95])
def test_the_streamed_sentence_is_the_whole_sentences_audio(fp32: Any, speed: float) -> None:
    import torch

    voice = Voice(name="joe", clips=(JOE,))
    audio = {}
    for stream in (False, True):
        torch.manual_seed(3)
        chunks = list(fp32.synthesize("Hello there.", voice, SynthesisOptions(stream=stream, speed=speed)))
        audio[stream] = np.concatenate(chunks)
    assert len(chunks) >= 2  # really streamed
    assert len(audio[True]) == len(audio[False])
    assert _snr_db(audio[False], audio[True]) > 110


@pytest.mark.parametrize("speed", [1.0, 0.95, 2.0])
def test_a_one_code_utterance_is_the_same_streamed_or_whole(fp32: Any, speed: float) -> None:
    """The shortest utterance (the stop code first): both paths give the same audio, 1/speed as long as at 1.0;
    at speed 2, which leaves no decoder frame, both give that length of silence instead of an error."""
    import torch

    voice = Voice(name="joe", clips=(JOE,))
    bias = fp32._gpt.head.bias
    stop = fp32._model.gpt.stop_audio_token
    saved = bias[stop].item()
    bias[stop] = 1e4
    try:
        audio = {}
        for stream in (False, True):
            torch.manual_seed(0)
            chunks = list(fp32.synthesize("Hi.", voice, SynthesisOptions(stream=stream, speed=speed)))
            audio[stream] = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    finally:
        bias[stop] = saved
    assert len(audio[True]) == len(audio[False]) == round(1024 / speed)
    if speed != 2.0:
        assert _snr_db(audio[False], audio[True]) > 110
    else:
        assert not audio[True].any() and not audio[False].any()


def test_an_utterance_that_stops_early_is_coquis(fp32: Any, coqui: Any) -> None:
    """The tiny model never stops on its own (its stop code is forbidden): let it, and the stop code, its latent
    and everything before it are still coqui's."""
    import torch

    from speakcli.engines.xtts_gpt import FastGpt, Sampling

    latent, _, tokens = _inputs(fp32)
    stop = coqui.gpt.stop_audio_token
    head = coqui.gpt.mel_head.bias
    saved = head[stop].item()
    with torch.no_grad():
        head[stop] = 5.0
    try:
        gpt = FastGpt(coqui.gpt, "fp32", "cpu")
        lengths = set()
        for seed in range(4):
            want = _coqui_codes(coqui, latent, tokens, seed)
            torch.manual_seed(seed)
            with torch.inference_mode():
                steps = list(gpt.generate(latent, tokens, Sampling()))
            assert [code for code, _ in steps] == want.tolist()
            second_pass = _coqui_latents(coqui, latent, tokens, want)
            torch.testing.assert_close(torch.stack([h for _, h in steps]), second_pass, atol=1e-5, rtol=1e-5)
            lengths.add(len(steps))
        assert all(n < gpt.max_codes for n in lengths) and steps[-1][0] == stop  # it did stop early
    finally:
        with torch.no_grad():
            head[stop] = saved


def test_teacher_forcing_gives_the_logits_generation_saw(fp32: Any) -> None:
    """One pass over forced codes gives each step's logits: the KV cache and positions agree with the prefill."""
    import torch

    from speakcli.engines.xtts_gpt import Sampling

    latent, _, tokens = _inputs(fp32)
    torch.manual_seed(0)
    with torch.inference_mode():
        steps = list(fp32._gpt.generate(latent, tokens, Sampling()))
        seen = fp32._gpt.head(torch.stack([hidden for _, hidden in steps]))
    forced = fp32._gpt.logits(latent, tokens, torch.tensor([code for code, _ in steps]))
    assert forced.shape == seen.shape
    torch.testing.assert_close(forced, seen, atol=1e-4, rtol=1e-4)


def test_teacher_forced_agreement_with_coqui_is_perfect_in_fp32_and_not_in_int8(
    tiny_xtts_dir: Path, fp32: Any, coqui: Any
) -> None:
    import torch

    from speakcli.testing.xtts_teacher import agreement, coqui_logits, sample_codes

    latent, _, tokens = _inputs(fp32)
    codes = sample_codes(fp32._gpt, tokens, latent)
    reference = coqui_logits(coqui, tokens, latent, codes)
    ours = fp32._gpt.logits(latent, tokens, codes)
    same = agreement(reference, ours)
    assert same.top1 == 1.0 and abs(same.kl) < 1e-6 and same.positions == codes.numel()
    # fp32 is coqui's arithmetic to rounding (bf16 here would be off by about 1e-2, which the KL alone misses)
    torch.testing.assert_close(ours, reference, atol=1e-4, rtol=1e-5)
    int8 = agreement(reference, _engine(tiny_xtts_dir, "int8")._gpt.logits(latent, tokens, codes))
    assert int8.kl > 1e-9


@pytest.mark.parametrize("precision", ["fp32", "bf16", "int8", "fp16"])
@pytest.mark.parametrize("onednn", [True, False])
def test_each_linear_path_computes_x_w_plus_b(monkeypatch: pytest.MonkeyPatch, precision: str, onednn: bool) -> None:
    """oneDNN's packed layout, torch's plain matmul (CUDA and CPUs without oneDNN) and fbgemm's int8 all give
    x W^T + b, to their precision's rounding."""
    import torch

    from speakcli.engines import xtts_gpt

    if not onednn:
        monkeypatch.setattr(xtts_gpt, "_mkldnn_ok", lambda dtype: False)
    torch.manual_seed(0)
    weight, bias, x = torch.randn(96, 64) * 0.1, torch.randn(96), torch.randn(3, 64)
    layer = xtts_gpt.PackedLinear(weight, bias, precision, "cpu")
    want = x @ weight.T + bias
    got = layer(x.to(layer.dtype)).float()
    tolerance = {"fp32": 1e-5, "bf16": 2e-2, "fp16": 2e-3, "int8": 3e-2}[precision]
    assert (got - want).abs().max().item() <= tolerance * want.abs().max().item()
    if precision == "int8":
        assert layer.kind == "fbgemm int8"
    else:
        # oneDNN's bf16 needs AVX-512 (or AMX): on an AVX2-only CPU it refuses, and torch's matmul must take over.
        packed = onednn and precision != "fp16" and _onednn_runs(xtts_gpt.compute_dtype(precision))
        assert layer.kind == f"{'onednn' if packed else 'torch'} {precision}"


def _onednn_runs(dtype: Any) -> bool:
    """Whether this machine's oneDNN runs a packed linear layer in `dtype`: asked of oneDNN itself, not assumed."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    try:
        w = torch.ops.mkldnn._reorder_linear_weight(torch.ones(4, 4, dtype=dtype), 1)
        torch.ops.mkldnn._linear_pointwise(torch.ones(1, 4, dtype=dtype), w, None, "none", [], "")
    except RuntimeError:
        return False
    return True


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
    chosen = json.loads(run_cli("info", "--json", "--device", "cpu", "--precision", "int8").stdout)
    assert auto["precision"] == "fp32"  # auto on a CPU: random weights say nothing about real-weight quality
    assert chosen["precision"] == "int8"
    assert resolve_precision("auto", "cuda") in ("bf16", "fp16")
    # and the decoder's, by the same rule the engine loads it with
    from speakcli.engines.xtts_precision import decoder_precision

    assert auto["decoder_precision"] == "fp32"
    assert chosen["decoder_precision"] == decoder_precision("int8", "cpu")
    text = run_cli("info", "--device", "cpu", "--precision", "int8").stdout.decode()
    assert f"int8 (XTTS GPT), {decoder_precision('int8', 'cpu')} (XTTS decoder)" in " ".join(text.split())
