"""The tiny random XTTS through `say` end to end, against coqui's `tts` CLI on the same folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import BIN, ROOT, coqui_tts_cmd, med, table, time_cmd


def run(runs: int) -> str:
    from speakcli.testing.tiny_xtts import add_builtin_speaker, build_tiny_xtts

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_xtts(Path(tmp) / "tiny")
        # A built-in speaker, so coqui's CLI needs no reference audio (its torchaudio loader fails here).
        add_builtin_speaker(model, "Joe", ROOT / "voices/joe/reference.wav")
        out = Path(tmp) / "x.wav"
        env = {"HF_HUB_OFFLINE": "1"}
        speak = time_cmd(
            [
                str(BIN / "speakcli"),
                "say",
                "Hello there.",
                "--model-dir",
                str(model),
                "--voice",
                "Joe",
                "-q",
                "-o",
                str(out),
                "--force",
            ],
            runs,
            env=env,
        )
        clone = time_cmd(
            [str(BIN / "speakcli"), "say", "Hello there.", "--model-dir", str(model), "-q", "-o", str(out), "--force"],
            runs,
            env=env,
        )
        coqui = time_cmd(
            coqui_tts_cmd(model, "Hello there.", str(out)),
            runs,
            env=env,
        )
        rows = [
            ("speakcli say --voice Joe (built-in speaker)", f"{med(speak):.2f}", "1.00"),
            ("tts --speaker_idx Joe (coqui-tts CLI)", f"{med(coqui):.2f}", f"{med(coqui) / med(speak):.2f}"),
            ("speakcli say (clones voices/joe/reference.wav)", f"{med(clone):.2f}", f"{med(clone) / med(speak):.2f}"),
        ]
    return table(f"tiny XTTS end to end, {runs} runs", rows, ("command", "median s", "x speakcli"))
