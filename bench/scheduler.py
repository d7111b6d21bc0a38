"""The scheduler: a short request behind a long one (Piper), concurrent XTTS requests stepped together, and batch.

Three measurements, each compared side by side in one run, interleaved:
- Piper over HTTP: a one-line request's time to its first audio byte on an idle server, and while a 4,000-character
  request streams.
- A full-size random XTTS (int8, the CPU's best precision; 61 forced codes a sentence) over HTTP: N = 1, 2, 4, 8
  one-sentence requests sent at once against the same requests one after another (total wall time, and each
  request's first chunk), and where one request's time goes (GPT steps against the decoder).
- The same model: a 20-line `speakcli batch` with the default batch size against `--max-batch 1` (one sentence a
  step: the one-at-a-time path the scheduler replaced).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench.common import med, table
from bench.serve import server

FORCED_TOKENS = 64  # random weights never stop: 61 codes, 2.83 s of audio, every sentence
LONG = " ".join(f"Sentence {i} of the long request goes on for a while, as long replies do." for i in range(55))[:4000]
SHORT = "Is the door locked?"
# A long request whose sentences are each about as long as SHORT: the sentence in progress costs what SHORT costs.
LONG_OF_SHORT = " ".join(f"Is door {i} locked?" for i in range(220))[:4000]


def _first_byte(client: httpx.Client, body: dict[str, Any], started: float | None = None) -> tuple[float, float]:
    """(seconds to the first audio byte, seconds to the end) of one streamed /v1/synthesize."""
    start = time.perf_counter() if started is None else started
    first = None
    with client.stream("POST", "/v1/synthesize", json={**body, "stream": True}) as r:
        r.raise_for_status()
        for chunk in r.iter_bytes():
            if first is None and len(chunk) > 44:  # past the WAV header
                first = time.perf_counter() - start
    end = time.perf_counter() - start
    return (first if first is not None else end), end


def _behind(url: str, c: httpx.Client, long: str) -> float:
    """SHORT's time to its first audio byte when it arrives 1 s after `long` began streaming."""
    ready = threading.Event()
    long_started = time.perf_counter()

    def long_request() -> None:
        with (
            httpx.Client(base_url=url, timeout=600) as lc,
            lc.stream("POST", "/v1/synthesize", json={"text": long, "stream": True}) as r,
        ):
            for chunk in r.iter_bytes():
                if len(chunk) > 44:
                    ready.set()

    t = threading.Thread(target=long_request)
    t.start()
    ready.wait(120)
    time.sleep(max(0.0, 1.0 - (time.perf_counter() - long_started)))
    try:
        return _first_byte(c, {"text": SHORT})[0]
    finally:
        t.join()


def head_of_line(runs: int) -> str:
    idle: list[float] = []
    behind: dict[str, list[float]] = {"long": [], "short": []}
    with server("--engine", "piper") as url, httpx.Client(base_url=url, timeout=600) as c:
        _first_byte(c, {"text": SHORT})  # warm
        for _ in range(runs):
            idle.append(_first_byte(c, {"text": SHORT})[0])
            behind["long"].append(_behind(url, c, LONG))
            behind["short"].append(_behind(url, c, LONG_OF_SHORT))
    rows = [("one-line request, idle server", f"{med(idle):.2f}", "1.00x")]
    for key, what in (("long", "sentences of 70 characters"), ("short", f"sentences as long as {SHORT!r}")):
        t = med(behind[key])
        rows.append((f"the same, 1 s after a 4,000-character request of {what}", f"{t:.2f}", f"{t / med(idle):.2f}x"))
    return table("Piper: a short request behind a long one (time to first audio byte, s)", rows, ("", "s", "vs idle"))


def _concurrent(url: str, n: int) -> tuple[float, list[float]]:
    """N one-sentence requests at once: wall seconds until all ended, and each one's first chunk."""
    firsts: list[float] = [0.0] * n
    barrier = threading.Barrier(n + 1)
    start = [0.0]

    def one(i: int) -> None:
        with httpx.Client(base_url=url, timeout=600) as c:
            barrier.wait()
            firsts[i] = _first_byte(c, {"text": f"Client number {i} asks for one sentence.", "seed": i}, start[0])[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    start[0] = time.perf_counter()
    barrier.wait()
    for t in threads:
        t.join()
    return time.perf_counter() - start[0], sorted(firsts)


def _sequential(url: str, n: int) -> tuple[float, list[float]]:
    firsts = []
    start = time.perf_counter()
    with httpx.Client(base_url=url, timeout=600) as c:
        for i in range(n):
            firsts.append(_first_byte(c, {"text": f"Client number {i} asks for one sentence.", "seed": i})[0])
    return time.perf_counter() - start, firsts


def _engine(folder: Path) -> tuple[Any, Any]:
    from speakcli.engines.base import SynthesisOptions, Voice
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(folder, device="cpu", precision="int8")
    engine.load()
    voice = Voice("joe", clips=(Path(__file__).resolve().parents[1] / "voices/joe/reference.wav",))
    list(engine.synthesize("Warm up.", voice, SynthesisOptions()))
    return engine, voice


def _split(engine: Any, voice: Any) -> tuple[float, float, float]:
    """One sentence alone, in process: (seconds in GPT steps, seconds in the decoder, total)."""
    from speakcli.engines.base import SynthesisOptions

    spent = {"gpt": 0.0}
    real = engine._gpt.step

    def timed(sequences: Any) -> Any:
        began = time.perf_counter()
        try:
            return real(sequences)
        finally:
            spent["gpt"] += time.perf_counter() - began

    engine._gpt.step = timed
    try:
        began = time.perf_counter()
        list(engine.synthesize("Client number one asks for one sentence.", voice, SynthesisOptions(seed=1)))
        total = time.perf_counter() - began
    finally:
        del engine._gpt.step  # the class's own method again
    return spent["gpt"], total - spent["gpt"], total


def _step_costs(engine: Any, voice: Any, sizes: tuple[int, ...] = (1, 4, 8), steps: int = 20) -> dict[int, float]:
    """Median seconds of one GPT step for `size` sentences in progress together (past their prompts)."""
    import torch

    from speakcli.engines.base import SynthesisOptions

    costs = {}
    with torch.inference_mode():
        for size in sizes:
            sentences = [
                engine.begin(f"Client number {i} asks for one sentence.", voice, SynthesisOptions(seed=i))
                for i in range(size)
            ]
            sequences = [s.sequence for s in sentences]
            for _ in range(3):  # the prompts, and warm-up
                engine._gpt.step(sequences)
            times = []
            for _ in range(steps):
                began = time.perf_counter()
                engine._gpt.step(sequences)
                times.append(time.perf_counter() - began)
            costs[size] = med(times)
            for sentence in sentences:
                sentence.close()
    return costs


def _decoder_batched(engine: Any, size: int = 4, runs: int = 3) -> float:
    """HiFi-GAN decoding `size` sentences' latents in one call against one call each (interleaved): the ratio."""
    import torch

    from speakcli.engines.xtts_stream import decode_whole

    decoder = engine._model.hifigan_decoder
    latents = torch.randn(size, 64, 1024, generator=torch.Generator().manual_seed(0))
    embedding = torch.randn(size, 512, 1, generator=torch.Generator().manual_seed(1))
    together, apart = [], []
    with torch.inference_mode():
        decode_whole(decoder, latents[:1], embedding[:1])  # warm: oneDNN makes its kernels for each shape first
        decode_whole(decoder, latents, embedding)
        for _ in range(runs):
            began = time.perf_counter()
            decode_whole(decoder, latents, embedding)
            together.append(time.perf_counter() - began)
            began = time.perf_counter()
            for i in range(size):
                decode_whole(decoder, latents[i : i + 1], embedding[i : i + 1])
            apart.append(time.perf_counter() - began)
    return med(together) / med(apart)


def _decoder_precisions(engine: Any, runs: int = 3) -> tuple[float, float]:
    """One sentence's latents (61 codes) through the engine's HiFi-GAN and an fp32 copy of it, interleaved:
    (seconds at the engine's decoder precision, seconds at fp32)."""
    import copy

    import torch

    from speakcli.engines.xtts_stream import decode_whole

    decoder = engine._model.hifigan_decoder
    generators = {"in use": decoder.waveform_decoder, "fp32": copy.deepcopy(decoder.waveform_decoder).float()}
    latents = torch.randn(1, FORCED_TOKENS - 3, 1024, generator=torch.Generator().manual_seed(0))
    embedding = torch.randn(1, 512, 1, generator=torch.Generator().manual_seed(1))
    times: dict[str, list[float]] = {"in use": [], "fp32": []}
    try:
        with torch.inference_mode():
            for _ in range(runs + 1):  # the first round warms each up
                for key, generator in generators.items():
                    decoder.waveform_decoder = generator
                    began = time.perf_counter()
                    decode_whole(decoder, latents, embedding)
                    times[key].append(time.perf_counter() - began)
    finally:
        decoder.waveform_decoder = generators["in use"]
    return med(times["in use"][1:]), med(times["fp32"][1:])


def xtts_concurrency(folder: Path, runs: int) -> str:
    flags = ("--engine", "xtts", "--model-dir", str(folder), "--device", "cpu", "--precision", "int8")
    rows = []
    with server(*flags) as url:
        _sequential(url, 1)  # warm: latents cached, first-call costs paid
        for n in (1, 2, 4, 8):
            seq_t, conc_t, seq_f, conc_f = [], [], [], []
            for _ in range(max(1, runs)):
                t, f = _sequential(url, n)
                seq_t.append(t)
                seq_f.append(f)
                t, f = _concurrent(url, n)
                conc_t.append(t)
                conc_f.append(f)
            best = min(range(len(conc_t)), key=lambda i: conc_t[i])
            alone = med([f[0] for f in seq_f])
            rows.append(
                (
                    str(n),
                    f"{med(seq_t):.2f}",
                    f"{med(conc_t):.2f}",
                    f"{med(conc_t) / med(seq_t):.2f}x",
                    " / ".join(f"{x:.2f}" for x in conc_f[best]),
                    f"{max(conc_f[best]) / alone:.2f}x",
                )
            )
    engine, voice = _engine(folder)
    gpt, decoder, total = _split(engine, voice)
    costs = _step_costs(engine, voice)
    decoder_ratio = _decoder_batched(engine)
    in_use, fp32 = _decoder_precisions(engine)
    out = table(
        "Full-size random XTTS, int8, over HTTP: N one-sentence requests at once against one after another",
        rows,
        ("N", "one after another, s", "at once, s", "ratio", "first chunks at once, s", "last first chunk vs alone"),
    )
    out += table(
        "Where one request's time goes (one sentence alone, in process)",
        [
            ("GPT steps", f"{gpt:.2f}", f"{gpt / total:.0%}"),
            ("decoder and the rest", f"{decoder:.2f}", f"{decoder / total:.0%}"),
        ],
        ("", "s", "share"),
    )
    out += table(
        "What batching costs, in process: a GPT step for N sentences together, and the decoder for 4",
        [
            (f"GPT step, {n} sentence{'s' if n > 1 else ''}", f"{c * 1000:.1f} ms", f"{c / costs[1]:.2f}x")
            for n, c in costs.items()
        ]
        + [
            (
                f"HiFi-GAN ({engine.decoder_precision}), 4 sentences in one call vs one call each",
                "",
                f"{decoder_ratio:.2f}x",
            ),
            (
                f"HiFi-GAN, one sentence: {engine.decoder_precision} vs fp32",
                f"{in_use:.2f} / {fp32:.2f} s",
                f"{in_use / fp32:.2f}x",
            ),
        ],
        ("", "time", "vs one"),
    )
    return out


def xtts_batch(folder: Path, runs: int) -> str:
    lines = "\n".join(f"Line {i} of the book is read aloud here." for i in range(20)) + "\n"
    base = [sys.executable, "-m", "speakcli", "batch", "-", "--model-dir", str(folder), "--device", "cpu"]
    base += ["--precision", "int8", "--quiet", "--force"]
    times: dict[str, list[float]] = {"default": [], "1": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(max(1, runs)):
            for label in ("1", "default"):  # interleaved
                extra = [] if label == "default" else ["--max-batch", label]
                cmd = [*base, "-d", str(Path(tmp) / label), *extra]
                start = time.perf_counter()
                subprocess.run(cmd, input=lines.encode(), check=True, capture_output=True, env=os.environ)
                times[label].append(time.perf_counter() - start)
    one, default = med(times["1"]), med(times["default"])
    return table(
        "Full-size random XTTS, int8: a 20-line `speakcli batch` (wall time, model load included)",
        [
            ("--max-batch 1 (one sentence a step)", f"{one:.1f}", "1.00x"),
            ("default batch size", f"{default:.1f}", f"{default / one:.2f}x"),
        ],
        ("", "s", "vs one at a time"),
    )


def run(runs: int) -> str:
    runs = min(runs, 3)
    out = head_of_line(runs)
    from speakcli.testing.tiny_xtts import build_tiny_xtts

    with tempfile.TemporaryDirectory() as tmp:
        folder = build_tiny_xtts(Path(tmp) / "full", full_size=True, max_audio_tokens=FORCED_TOKENS)
        out += xtts_concurrency(folder, runs)
        out += xtts_batch(folder, runs)
    return out


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 1))
