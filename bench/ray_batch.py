"""Items per second of one batch: the local executor against Ray with 1 and 2 workers, the Piper voice, interleaved."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import med, table

CONFIGS = (("local executor", 0), ("ray, 1 worker", 1), ("ray, 2 workers", 2))


def _one(lines: Path, out: Path, workers: int) -> tuple[float, float]:
    """(whole run, first to last result) in seconds: Ray's start is in the first, not the second."""
    from speakcli.batch import read_items, run_batch
    from speakcli.batch.ray_executor import RayExecutor, RayOptions
    from speakcli.service import SpeechService
    from speakcli.settings import load_settings

    stamps: list[float] = []
    start = time.perf_counter()
    with SpeechService(load_settings({"engine": "piper"})) as service:
        executor = RayExecutor(RayOptions(workers=workers)) if workers else None
        _, summary = run_batch(
            service,
            read_items([str(lines)]),
            out,
            executor=executor,
            on_result=lambda result: stamps.append(time.perf_counter()),
        )
    assert summary.failed == 0 and summary.ok == len(stamps), summary
    return time.perf_counter() - start, stamps[-1] - stamps[0]


def run(runs: int) -> str:
    n = int(os.environ.get("SPEAKCLI_BENCH_ITEMS", "40"))
    runs = min(runs, 3)  # each Ray run starts a local Ray (seconds, ~1 GB)
    whole: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    steady: dict[str, list[float]] = {name: [] for name, _ in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        lines = Path(tmp) / "lines.txt"
        lines.write_text("".join(f"Line {i} of the benchmark, a sentence of ordinary length.\n" for i in range(n)))
        for r in range(runs):
            for name, workers in CONFIGS:  # interleaved: load on the machine changes under all of them alike
                total, made = _one(lines, Path(tmp) / f"out-{r}-{workers}", workers)
                whole[name].append(n / total)
                steady[name].append((n - 1) / made)
    base_whole, base_steady = med(whole["local executor"]), med(steady["local executor"])
    rows = [
        (
            name,
            f"{med(whole[name]):.2f}",
            f"{med(whole[name]) / base_whole:.2f}",
            f"{med(steady[name]):.2f}",
            f"{med(steady[name]) / base_steady:.2f}",
        )
        for name, _ in CONFIGS
    ]
    return table(
        f"batch executors, Piper, {n} items, median of {runs} interleaved runs (Ray's start included, then not)",
        rows,
        ("executor", "items/s (whole run)", "x local", "items/s (first to last item)", "x local"),
    )
