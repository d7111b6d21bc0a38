"""Options shared by every command that loads or describes a model, so they mean the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

Engine = Annotated[
    str | None, typer.Option("--engine", help="auto, xtts or piper [env SPEAKCLI_ENGINE]", show_default=False)
]
ModelDir = Annotated[
    Path | None,
    typer.Option("--model-dir", help="Local XTTS v2 model folder [env SPEAKCLI_XTTS_DIR]", show_default=False),
]
Device = Annotated[str | None, typer.Option("--device", help="auto, cpu, cuda or cuda:N [env SPEAKCLI_DEVICE]")]
Precision = Annotated[
    str | None,
    typer.Option("--precision", help="XTTS GPT precision: auto, fp32, bf16 or int8 [env SPEAKCLI_PRECISION]"),
]
VoicesDir = Annotated[
    Path | None, typer.Option("--voices-dir", help="Your voice library [env SPEAKCLI_VOICES_DIR]", show_default=False)
]
Voice = Annotated[
    str | None,
    typer.Option("--voice", "-v", help="Voice name, built-in speaker, WAV file or folder [env SPEAKCLI_VOICE]"),
]
Language = Annotated[str | None, typer.Option("--language", "-l", help="Language code (en, de, fr...)")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but errors.")]
Speed = Annotated[float | None, typer.Option("--speed", help="Speaking rate, 0.25 to 4 [env SPEAKCLI_SPEED].")]
Pause = Annotated[
    float | None, typer.Option("--pause", help="Seconds of silence between sentences [env SPEAKCLI_PAUSE].")
]
OutputDevice = Annotated[
    str | None, typer.Option("--output-device", help="Index or part of a device name (see `speakcli info`).")
]


def engine_flags(
    engine: str | None,
    model_dir: Path | None,
    device: str | None,
    voices_dir: Path | None,
    precision: str | None = None,
) -> dict[str, Any]:
    return {
        "engine": engine,
        "model_dir": model_dir,
        "device": device,
        "voices_dir": voices_dir,
        "precision": precision,
    }
