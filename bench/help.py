"""Start-up cost a user pays for `--help`: speakcli against coqui's own `tts` CLI."""

from __future__ import annotations

from bench.common import BIN, med, table, time_cmd


def run(runs: int) -> str:
    speak = time_cmd([str(BIN / "speakcli"), "--help"], runs)
    coqui = time_cmd([str(BIN / "tts"), "--help"], runs)
    rows = [
        ("speakcli --help", f"{med(speak):.3f}", f"{min(speak):.3f}", "1.00"),
        ("tts --help (coqui-tts)", f"{med(coqui):.3f}", f"{min(coqui):.3f}", f"{med(coqui) / med(speak):.2f}"),
    ]
    return table(f"--help start-up, {runs} runs", rows, ("command", "median s", "min s", "x speakcli"))
