"""`say --voice NAME` cold vs warm latent cache: in process per request, and end to end through the CLI."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import BIN, ROOT, med, table, time_cmd


def _latent_rows(label: str, model: Path, runs: int, text: str) -> list[tuple[str, ...]]:
    """Per request on a loaded engine: cold cache (compute latents) vs warm (read the npz), interleaved."""
    import shutil

    from speakcli.engines.base import SynthesisOptions, Voice
    from speakcli.engines.xtts import XttsEngine
    from speakcli.latents import LatentCache
    from speakcli.service import utterance

    with tempfile.TemporaryDirectory() as cache_dir:
        cache = LatentCache(Path(cache_dir))
        engine = XttsEngine(model, device="cpu", cache=cache)
        t0 = time.perf_counter()
        engine.load()
        load = time.perf_counter() - t0
        voice = Voice("joe", clips=(ROOT / "voices/joe/reference.wav",))
        opts = SynthesisOptions(pause=0)
        list(utterance(engine, text, voice, opts))  # warm-up: first-call allocations
        cold, warm, latents_only = [], [], []
        for _ in range(runs):
            shutil.rmtree(cache_dir)
            engine._latents.clear()
            t0 = time.perf_counter()
            list(utterance(engine, text, voice, opts))
            cold.append(time.perf_counter() - t0)
            engine._latents.clear()  # a new process: only the disk cache is left
            t0 = time.perf_counter()
            list(utterance(engine, text, voice, opts))
            warm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.compute_latents(voice.clips)
            latents_only.append(time.perf_counter() - t0)
    share = med(latents_only) / med(cold)
    return [
        (label, "model load", f"{load:.2f}", ""),
        (label, "request, cold cache (compute latents)", f"{med(cold):.3f}", "1.00"),
        (label, "request, warm cache (read npz)", f"{med(warm):.3f}", f"{med(warm) / med(cold):.2f}"),
        (label, "latent computation alone", f"{med(latents_only):.3f}", f"{share:.2f} of a cold request"),
    ]


def run(runs: int) -> str:
    from speakcli.testing.tiny_xtts import build_tiny_xtts

    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_xtts(Path(tmp) / "tiny")
        rows += _latent_rows("tiny", tiny, runs, "Hello there.")
        env = {"XDG_CACHE_HOME": str(Path(tmp) / "xdg-cache"), "HF_HUB_OFFLINE": "1"}
        say = [
            str(BIN / "speakcli"),
            "say",
            "Hello there.",
            "--voice",
            "joe",
            "--model-dir",
            str(tiny),
            "-q",
            "-o",
            str(Path(tmp) / "o.wav"),
            "--force",
        ]
        cold_cli, warm_cli = [], []
        for _ in range(runs):
            import shutil

            shutil.rmtree(env["XDG_CACHE_HOME"], ignore_errors=True)
            cold_cli += time_cmd(say, 1, env=env)
            warm_cli += time_cmd(say, 1, env=env)
        rows += [
            ("tiny", "`speakcli say --voice joe`, cold cache", f"{med(cold_cli):.2f}", "1.00"),
            (
                "tiny",
                "`speakcli say --voice joe`, warm cache",
                f"{med(warm_cli):.2f}",
                f"{med(warm_cli) / med(cold_cli):.2f}",
            ),
        ]
    if os.environ.get("SPEAKCLI_BENCH_FULL", "1") != "0":
        with tempfile.TemporaryDirectory() as tmp:
            # Real v2 GPT dimensions with random weights; 64 audio tokens is about 3 s of speech.
            full = build_tiny_xtts(Path(tmp) / "full", full_size=True, max_audio_tokens=64)
            rows += _latent_rows("full-size", full, max(2, runs // 2), "Hello there, how are you today?")
    return table(f"latent cache, cold vs warm, {runs} runs, median seconds", rows, ("model", "measure", "s", "ratio"))
