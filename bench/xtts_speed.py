"""XTTS speed on a full-size random model: coqui's inference and inference_stream against speakcli's paths per precision.

`python -m bench.xtts_speed [--runs N] [--quick]` runs it alone; `--quick` (or SPEAKCLI_BENCH_XTTS_QUICK=1 under
bench/run.py) uses the tiny model, as a smoke run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import ROOT, med, table

TEXT = "Hello there, this is a quick test of how fast the model speaks."
TEACHER_TEXTS = (TEXT, "The quick brown fox jumps over the lazy dog.", "Speak every line of a file, in order, once.")
FORCED_TOKENS = 64  # gpt_max_audio_tokens: random weights never stop, so 61 codes (2.83 s of audio) each time
PRECISIONS = ("fp32", "bf16", "int8")


def _timed(chunks: Iterable[Any]) -> tuple[float, float, int]:
    """(seconds to the first chunk, seconds in total, samples) of consuming `chunks`."""
    start = time.perf_counter()
    first, samples = None, 0
    for chunk in chunks:
        if first is None:
            first = time.perf_counter() - start
        samples += int(np.asarray(chunk).size)
    total = time.perf_counter() - start
    return first if first is not None else total, total, samples


def _snr_db(reference: np.ndarray, test: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / max(np.sum((reference - test) ** 2), 1e-30)))


def _stream_snr(engine: Any, cond: Any, embedding: Any) -> tuple[float, int]:
    """SNR of speakcli's streamed decode against the one-piece decode of the same generated latents."""
    import torch

    from speakcli.engines.xtts_gpt import Sampling
    from speakcli.engines.xtts_sentence import STREAM_CHUNK_TOKENS
    from speakcli.engines.xtts_stream import StreamDecoder

    model = engine._model
    text = torch.IntTensor(model.tokenizer.encode(TEXT.lower(), lang="en")).unsqueeze(0)
    with torch.inference_mode():
        latents = torch.stack([hidden for _code, hidden in engine._gpt.generate(cond, text, Sampling())])
        pieces = list(torch.split(latents, STREAM_CHUNK_TOKENS))
        decoder = StreamDecoder(model.hifigan_decoder, embedding)
        streamed = np.concatenate([decoder.push(p, final=i == len(pieces) - 1) for i, p in enumerate(pieces)])
        whole = model.hifigan_decoder(latents[None], g=embedding).reshape(-1).numpy()
    assert len(whole) == len(streamed)
    return _snr_db(whole, streamed), len(pieces)


def _teacher_rows(coqui: Any, engines: dict[str, Any], cond: Any) -> list[tuple[str, ...]]:
    """Each of speakcli's precisions against coqui's own fp32 GPT, fed the same codes (sampled by speakcli fp32)."""
    import torch

    from speakcli.testing.xtts_teacher import agreement, coqui_logits, sample_codes

    rows = []
    forced = []
    for seed, text in enumerate(TEACHER_TEXTS):
        tokens = torch.IntTensor(coqui.tokenizer.encode(text.lower(), lang="en")).unsqueeze(0)
        codes = sample_codes(engines["fp32"]._gpt, tokens, cond, seed=seed)
        forced.append((tokens, codes, coqui_logits(coqui, tokens, cond, codes)))
    for precision in PRECISIONS:
        top1, kl, positions = 0.0, 0.0, 0
        for tokens, codes, reference in forced:
            got = agreement(reference, engines[precision]._gpt.logits(cond, tokens, codes))
            top1 += got.top1 * got.positions
            kl += got.kl * got.positions
            positions += got.positions
        rows.append((f"speakcli {precision}", str(positions), f"{top1 / positions:.3f}", f"{kl / positions:.2e}"))
    return rows


def _warm_start(folder: Path, engine: Any, runs: int) -> str:
    """`say -o` cold (loads the model itself) against `say` through a running `speakcli serve` with the model
    loaded, and against the same request sent to that server without the CLI (the synthesis itself, as the
    server makes it), the last two interleaved; int8, the fastest, so the overhead shows most."""
    import httpx

    from bench.serve import say_seconds, server
    from speakcli.testing.tiny_xtts import add_builtin_speaker

    add_builtin_speaker(folder, "joe", ROOT / "voices/joe/reference.wav", engine)
    flags = ("--engine", "xtts", "--model-dir", str(folder), "--device", "cpu", "--precision", "int8")

    def request(url: str) -> float:
        start = time.perf_counter()
        with httpx.stream("POST", f"{url}/v1/synthesize", json={"text": TEXT, "voice": "joe"}, timeout=120) as r:
            for _ in r.iter_bytes():
                pass
        return time.perf_counter() - start

    cold, warm, alone = [], [], []
    with tempfile.TemporaryDirectory() as tmp, server(*flags) as url:
        say_seconds(Path(tmp), "warm-up", *flags, "--voice", "joe", text=TEXT)
        for i in range(runs):  # interleaved pairs; a cold run between them would disturb the next (2 GB freed)
            warm.append(say_seconds(Path(tmp), f"warm{i}", *flags, "--voice", "joe", text=TEXT))
            alone.append(request(url))
        for i in range(runs):
            cold.append(say_seconds(Path(tmp), f"cold{i}", *flags, "--voice", "joe", "--no-server", text=TEXT))
    rows = [
        ("`say -o`, cold (imports, model load, synthesis)", f"{med(cold):.2f}"),
        ("`say -o` through a running `speakcli serve`", f"{med(warm):.2f}"),
        ("the same request to that server, without the CLI", f"{med(alone):.2f}"),
        ("the CLI's own cost through the server", f"{med(warm) - med(alone):+.2f}"),
    ]
    return table(f"warm start, int8, median of {runs} runs", rows, ("what", "seconds"))


def measure(folder: Path, runs: int, label: str) -> str:
    import torch

    from speakcli.engines.base import SynthesisOptions, Voice
    from speakcli.engines.xtts import XttsEngine
    from speakcli.testing.tiny_xtts import load_coqui_xtts

    engines, loads = {}, {}
    for precision in PRECISIONS:
        start = time.perf_counter()
        engines[precision] = XttsEngine(folder, device="cpu", precision=precision)
        engines[precision].load()
        loads[precision] = time.perf_counter() - start
    voice = Voice(name="joe", clips=(ROOT / "voices/joe/reference.wav",))
    latent, embedding = (torch.from_numpy(x) for x in engines["fp32"].compute_latents(voice.clips))
    coqui = load_coqui_xtts(folder)  # loaded by coqui's own code alone, as a coqui user has it
    rate = engines["fp32"].sample_rate

    def coqui_file() -> Iterable[Any]:
        with torch.inference_mode():
            yield coqui.inference(TEXT, "en", latent, embedding, enable_text_splitting=False)["wav"]

    def coqui_stream() -> Iterable[Any]:
        with torch.inference_mode():
            yield from coqui.inference_stream(TEXT, "en", latent, embedding, enable_text_splitting=False)

    def ours(precision: str, stream: bool) -> Callable[[], Iterable[Any]]:
        return lambda: engines[precision].synthesize(TEXT, voice, SynthesisOptions(stream=stream))

    paths: dict[tuple[str, str, str], Callable[[], Iterable[Any]]] = {
        ("coqui Xtts.inference", "fp32", "file"): coqui_file,
        ("coqui Xtts.inference_stream", "fp32", "stream"): coqui_stream,
    }
    for precision in PRECISIONS:
        paths[("speakcli", precision, "file")] = ours(precision, False)
        paths[("speakcli", precision, "stream")] = ours(precision, True)
    for make in paths.values():  # warm-up: first-call allocations, oneDNN kernels, latents into memory
        _timed(make())
    results: dict[tuple[str, str, str], list[tuple[float, float, int]]] = {key: [] for key in paths}
    keys = list(paths)
    for i in range(runs):
        # Interleaved, and in a rotated order each round, so machine noise hits every path alike.
        for key in keys[i % len(keys) :] + keys[: i % len(keys)]:
            torch.manual_seed(i)
            results[key].append(_timed(paths[key]()))

    base = med([r[1] for r in results[keys[0]]])
    rows = []
    for (who, precision, mode), got in results.items():
        first, total = med([r[0] for r in got]), med([r[1] for r in got])
        audio = got[0][2] / rate
        rows.append(
            (
                f"{who} ({mode})",
                precision,
                f"{total / audio:.2f}",
                f"{first:.2f}",
                f"{total:.2f}",
                f"{total / base:.2f}",
            )
        )
    ratio_rows = []
    for precision in PRECISIONS:
        file = med([r[1] for r in results[("speakcli", precision, "file")]])
        stream = med([r[1] for r in results[("speakcli", precision, "stream")]])
        ratio_rows.append((f"speakcli {precision}", f"{stream / file:.2f}"))
    coqui_file_s = med([r[1] for r in results[keys[0]]])
    coqui_stream_s = med([r[1] for r in results[keys[1]]])
    ratio_rows.append(("coqui fp32", f"{coqui_stream_s / coqui_file_s:.2f}"))
    snr, chunks = _stream_snr(engines["fp32"], latent, embedding)
    audio_s = results[keys[0]][0][2] / rate
    out = [
        table(
            f"XTTS speed, {label}, {audio_s:.2f} s of audio, median of {runs} interleaved runs",
            rows,
            ("path", "GPT precision", "RTF", "first chunk s", "total s", "x coqui inference"),
        ),
        table("streamed / one-piece total time", ratio_rows, ("path", "ratio")),
        table(
            "teacher-forced next-code agreement with coqui's own fp32 GPT",
            _teacher_rows(coqui, engines, latent),
            ("GPT", "positions", "top-1 agreement", "KL(coqui fp32 || p) nats"),
        ),
        f"\nstreamed vs one-piece decode of the same latents: SNR {snr:.1f} dB over {chunks} chunks; "
        f"model load s: {', '.join(f'{p} {s:.1f}' for p, s in loads.items())}",
        _warm_start(folder, engines["int8"], max(runs, 3)),
    ]
    return "\n".join(out)


def run(runs: int, quick: bool | None = None) -> str:
    from speakcli.testing.tiny_xtts import build_tiny_xtts

    if quick is None:
        quick = os.environ.get("SPEAKCLI_BENCH_XTTS_QUICK") == "1"
    with tempfile.TemporaryDirectory() as tmp:
        if quick:
            folder = build_tiny_xtts(Path(tmp) / "tiny")
            return measure(folder, runs, "tiny random model (smoke run)")
        start = time.perf_counter()
        folder = build_tiny_xtts(Path(tmp) / "full", full_size=True, max_audio_tokens=FORCED_TOKENS)
        built = time.perf_counter() - start
        label = f"full-size random XTTS v2 (30 x 1024 GPT, built in {built:.0f} s)"
        return measure(folder, runs, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="the tiny model: a smoke run")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(run(args.runs, quick=args.quick))


if __name__ == "__main__":
    main()
