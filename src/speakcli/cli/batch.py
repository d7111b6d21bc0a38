"""`speakcli batch`: many lines or files in one engine load, resumable, with progress and a manifest."""

from __future__ import annotations

import json
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from speakcli.cli import options as o


def batch(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(help="Text, JSONL or CSV files; '-' (or a pipe) reads stdin.", show_default=False),
    ] = None,
    out_dir: Annotated[
        Path, typer.Option("--out-dir", "-o", help="Folder for the audio files and manifest.jsonl.")
    ] = Path("."),
    split: Annotated[str, typer.Option("--split", help="Text files: line, paragraph or file (one item).")] = "line",
    input_format: Annotated[str, typer.Option("--format", help="auto (by extension), text, jsonl or csv.")] = "auto",
    name_template: Annotated[
        str,
        typer.Option(
            "--name-template",
            help="Output names: {slug} (of the text), {hash} (of the text), {index}, {source}. "
            "A name with {index} changes when lines are inserted, and resume then re-makes those items.",
        ),
    ] = "{slug}-{hash}",
    format_out: Annotated[str, typer.Option("--format-out", help="wav, flac or ogg.")] = "wav",
    concat_out: Annotated[
        Path | None, typer.Option("--concat", help="Also join all items into this file.", show_default=False)
    ] = None,
    pause: Annotated[
        float | None, typer.Option("--pause", help="Seconds between sentences, and items in --concat.")
    ] = None,
    voice: o.Voice = None,
    language: o.Language = None,
    speed: o.Speed = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    voices_dir: o.VoicesDir = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Redo items already done; overwrite --concat.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: o.Quiet = False,
) -> int:
    """Speak many items in one run: one line, paragraph or file each, or JSONL/CSV rows; resumable."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from speakcli.audio import check_output_path
    from speakcli.batch import BatchRun, Item, concat, plan_outputs, read_items
    from speakcli.cli.common import announce
    from speakcli.cli.scope import open_service
    from speakcli.errors import ExitStatus, OutputError, SpeakError, UsageError
    from speakcli.settings import load_settings

    if split not in ("line", "paragraph", "file"):
        raise UsageError(f"--split {split!r}: use line, paragraph or file")
    if input_format not in ("auto", "text", "jsonl", "csv"):
        raise UsageError(f"--format {input_format!r}: use auto, text, jsonl or csv")
    if format_out not in ("wav", "flac", "ogg"):
        raise UsageError(f"--format-out {format_out!r}: use wav, flac or ogg")
    if not inputs:
        if sys.stdin.isatty():
            raise UsageError(
                "no input; pass files, or '-' with text on stdin (e.g. grep x log | speakcli batch - -o out/)"
            )
        inputs = ["-"]
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir} is a file; --out-dir needs a folder")
    if concat_out is not None:
        check_output_path(concat_out, force)
    settings = load_settings(
        {
            **o.engine_flags(engine, model_dir, device, voices_dir),
            "voice": voice,
            "language": language,
            "speed": speed,
            "pause": pause,
        }
    )
    items = read_items(inputs, split, input_format, sys.stdin)  # type: ignore[arg-type]
    if not items:
        raise UsageError("the input has no items to speak")
    speaker = open_service(settings)
    announce(speaker, quiet or as_json)
    todo = [item for item in items if item.error is None and item.skip is None]
    # A bad --voice or --language is the whole run's problem: say so now (exit 3 or 2), not once per item.
    if any(item.voice is None for item in todo):
        speaker.voice(None)
    if any(item.language is None for item in todo):
        speaker.options(stream=False)
    engine_id = f"{speaker.spec.name}:{speaker.spec.model_dir}"
    voices: dict[str | None, Any] = {}

    def voice_id(name: str | None) -> Any:
        # The voice as resolved now, clips' sizes and times included: re-recording a voice re-makes its items.
        try:
            v = speaker.voice(name)
        except SpeakError as exc:
            return f"unusable: {exc}"  # the item fails when it is made, and is retried next run
        if v is None:
            return None
        clips = [(str(c), c.stat().st_size, c.stat().st_mtime_ns) for c in v.clips if c.exists()]
        return [v.name, v.speaker, clips]

    def settings_of(item: Item) -> Any:
        # What the run's settings decide for this item, so a changed --voice, -l, --speed or --pause re-makes it.
        if item.voice not in voices:
            voices[item.voice] = voice_id(item.voice)
        s = settings
        return [voices[item.voice], item.language or s.language, item.speed or s.speed, s.pause, s.temperature]

    plan_outputs(items, out_dir, name_template, f".{format_out}", engine_id, settings_of)
    resolved: dict[str | None, Any] = {}

    def synthesize(item: Item) -> tuple[Any, float]:
        import numpy as np

        if item.voice not in resolved:
            resolved[item.voice] = speaker.voice(item.voice)  # resolved once per voice; XTTS latents cached once too
        job = speaker.speak(item.text, resolved[item.voice], speaker.options(item.language, item.speed, stream=False))
        chunks = list(job)
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.float32)), float(job.elapsed or 0.0)

    stop = {"requested": False}

    def on_sigint(signum: int, frame: Any) -> None:
        if stop["requested"]:
            raise KeyboardInterrupt
        stop["requested"] = True
        print("\nspeakcli: stopping after the current item (Ctrl-C again to quit now)", file=sys.stderr)

    err = Console(stderr=True)
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[audio]:.1f} s audio, {task.fields[speed]:.2f}x"),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=quiet or as_json or not err.is_terminal,
    )
    task = progress.add_task("batch", total=len(items), audio=0.0, speed=0.0)
    produced = {"audio": 0.0, "synth": 0.0}

    def on_result(result: Any) -> None:
        if result.status == "ok" and not result.kept:  # the speed of this run, not of earlier ones
            produced["audio"] += result.audio_seconds
            produced["synth"] += result.synthesis_seconds
        rate = produced["audio"] / produced["synth"] if produced["synth"] else 0.0
        progress.update(task, advance=1, audio=produced["audio"], speed=rate)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with progress:
            results, summary = BatchRun(
                items, out_dir, speaker.sample_rate, synthesize, force, on_result, stop=lambda: stop["requested"]
            ).run()
    finally:
        signal.signal(signal.SIGINT, previous)
    if concat_out is not None and not summary.interrupted:
        done = [out_dir / r.output for r in results if r.status == "ok" and r.output]
        concat(done, concat_out, speaker.sample_rate, settings.pause)
        summary.concat = str(concat_out)
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
    elif not quiet:
        speed_x = produced["audio"] / produced["synth"] if produced["synth"] else 0.0
        extra = "".join(
            f", {n} {what}"
            for n, what in (
                (summary.skipped, "skipped (nothing to say)"),
                (summary.removed, "kept file(s) of items no longer in the input"),
            )
            if n
        )
        print(
            f"speakcli: {summary.ok} made, {summary.already_done} already done, {summary.failed} failed "
            f"of {summary.total}{extra}; "
            f"{summary.audio_seconds:.1f} s of audio in {summary.wall_seconds:.1f} s ({speed_x:.1f}x real time) "
            f"-> {out_dir}{' (interrupted)' if summary.interrupted else ''}",
            file=sys.stderr,
        )
        for f in summary.failures[:20]:
            print(f"speakcli: failed: item {f['index']} ({f['source']}): {f['error']}", file=sys.stderr)
    if summary.interrupted:
        return int(ExitStatus.INTERRUPTED)
    return int(ExitStatus.PARTIAL) if summary.failed else 0
