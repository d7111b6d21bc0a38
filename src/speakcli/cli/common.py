"""Helpers shared by commands that produce audio: check outputs up front, then play and/or write."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from speakcli.audio import check_output_path, write_audio
from speakcli.errors import UsageError
from speakcli.service import SpeechService
from speakcli.worker import Job


def check_outputs(out: Path | None, play: bool | None, force: bool) -> bool:
    """Validate -o/--play before any model work; returns whether to play."""
    if out is not None:
        check_output_path(out, force)
    if play is None:
        play = out is None
    if not play and out is None:
        raise UsageError("--no-play without --out does nothing; pass -o FILE")
    if out is not None and str(out) == "-" and play:
        raise UsageError("-o - writes WAV to stdout; add --no-play, or write to a file")
    return play


def emit(service: SpeechService, job: Job[np.ndarray], out: Path | None, play: bool, quiet: bool) -> float:
    """Stream the job's audio to the speakers as it arrives and/or collect it for -o; returns audio seconds."""
    from speakcli.audio.playback import Player

    player = Player(service.sample_rate, service.settings.output_device) if play else None
    collected: list[np.ndarray] = []
    try:
        for chunk in job:
            if player is not None:
                player.write(chunk)
            if out is not None:
                collected.append(chunk)
    except BaseException:
        job.cancel()
        if player is not None:
            player.abort()
        raise
    if player is not None:
        player.close()
    seconds = (player.seconds if player else 0.0) or sum(len(c) for c in collected) / service.sample_rate
    if out is not None:
        audio = np.concatenate(collected) if collected else np.zeros(0, np.float32)
        write_audio(out, audio, service.sample_rate)
        if not quiet and str(out) != "-":
            print(f"speakcli: wrote {out} ({seconds:.1f} s, {service.sample_rate} Hz)", file=sys.stderr)
    return seconds


def announce(service: SpeechService, quiet: bool) -> None:
    """Say which engine `--engine auto` picked, in one line."""
    if service.settings.engine == "auto" and not quiet:
        print(f"speakcli: using {service.spec.note}", file=sys.stderr)
