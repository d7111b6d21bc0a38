"""N items: one `speakcli batch` against N `speakcli say` calls and N coqui `tts` calls, same tiny model."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench.common import BIN, ROOT, coqui_tts_cmd, table, time_cmd


def run(runs: int) -> str:
    from speakcli.testing.tiny_xtts import add_builtin_speaker, build_tiny_xtts

    n = int(os.environ.get("SPEAKCLI_BENCH_ITEMS", "50"))
    lines = [f"Line number {i} of the batch." for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_xtts(Path(tmp) / "tiny")
        add_builtin_speaker(model, "Joe", ROOT / "voices/joe/reference.wav")
        src = Path(tmp) / "lines.txt"
        src.write_text("\n".join(lines) + "\n")
        env = {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        common = ["--model-dir", str(model), "--voice", "Joe", "-q"]
        batch = time_cmd([str(BIN / "speakcli"), "batch", str(src), "-o", str(Path(tmp) / "b"), *common], 1, env=env)[0]
        say = sum(
            time_cmd([str(BIN / "speakcli"), "say", t, "-o", str(Path(tmp) / f"s{i}.wav"), *common], 1, env=env)[0]
            for i, t in enumerate(lines)
        )
        coqui = sum(
            time_cmd(
                coqui_tts_cmd(model, t, str(Path(tmp) / f"c{i}.wav")),
                1,
                env=env,
            )[0]
            for i, t in enumerate(lines)
        )
    rows = [
        (f"speakcli batch ({n} lines, one run)", f"{batch:.1f}", f"{batch / n:.3f}", "1.0"),
        (f"{n} x speakcli say", f"{say:.1f}", f"{say / n:.3f}", f"{say / batch:.1f}"),
        (f"{n} x tts (coqui-tts CLI)", f"{coqui:.1f}", f"{coqui / n:.3f}", f"{coqui / batch:.1f}"),
    ]
    return table(f"batch vs separate calls, tiny XTTS, {n} items", rows, ("how", "total s", "s per item", "x batch"))
