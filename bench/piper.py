"""Real-time factor of the bundled Piper voice, in process and through `say` end to end."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench.common import BIN, med, table, time_cmd

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)


def run(runs: int) -> str:
    import numpy as np

    from speakcli.engines.base import SynthesisOptions
    from speakcli.engines.piper import PiperEngine
    from speakcli.service import utterance

    engine = PiperEngine()
    t0 = time.perf_counter()
    engine.load()
    load = time.perf_counter() - t0
    rtfs, first = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        chunks = utterance(engine, TEXT, None, SynthesisOptions())
        head = next(chunks)
        first.append(time.perf_counter() - t0)
        audio = np.concatenate([head, *chunks])
        rtfs.append((time.perf_counter() - t0) / (len(audio) / engine.sample_rate))
        seconds = len(audio) / engine.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.wav"
        cli = time_cmd([str(BIN / "speakcli"), "say", TEXT, "--engine", "piper", "-q", "-o", str(out), "--force"], runs)
    rows = [
        ("voice load", f"{load:.3f} s"),
        ("audio per run", f"{seconds:.2f} s"),
        ("real-time factor (synthesis s / audio s)", f"{med(rtfs):.3f}"),
        ("first audio chunk", f"{med(first) * 1000:.0f} ms"),
        ("`speakcli say -o` end to end", f"{med(cli):.2f} s"),
    ]
    return table(f"Piper voice (en_US-joe-medium), {runs} runs, median", rows, ("measure", "value"))
