"""`speakcli batch`: many lines, files or a book in one engine load, resumable, with progress and a manifest."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from collections.abc import Iterator
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from speakcli.cli import options as o

if TYPE_CHECKING:  # imported lazily: `speakcli --help` must not load the core
    from speakcli.batch import Executor, Summary


EXAMPLES = """
speakcli batch book.txt -d audiobook/                      # one item per non-blank line
speakcli batch book.txt -d audiobook/ --split paragraph --concat book.ogg
speakcli batch rows.jsonl more.csv -d out/ --format-out flac --json
grep ERROR app.log | speakcli batch - -d errors/           # '-' (or a pipe) reads stdin
speakcli batch book.txt -d audiobook/ --executor ray --workers 2   # on a local Ray (see --ray-address)
speakcli batch book.epub -d book/ --concat book.m4b --voice me   # an audiobook with chapters, in a cloned voice
speakcli batch notes.md -d notes/ --chapters heading --concat notes.m4b --chapters-out notes.chapters.txt
"""


def batch(
    inputs: Annotated[
        list[str] | None,
        typer.Argument(
            help="Text, JSONL, CSV or EPUB files; '-' (or a pipe) reads stdin.", metavar="FILE", show_default=False
        ),
    ] = None,
    out_dir: Annotated[
        Path,
        typer.Option(
            *o.OUTPUT_DIR_DECLS, help="Folder for the audio files and manifest.jsonl (made if missing).", metavar="DIR"
        ),
    ] = Path("."),
    split: Annotated[
        Literal["line", "paragraph", "file"],
        typer.Option("--split", help="Text files: an item per line, per paragraph, or the whole file."),
    ] = "line",
    input_format: Annotated[
        Literal["auto", "text", "jsonl", "csv", "epub"],
        typer.Option("--format", help="Input format; auto goes by the file extension."),
    ] = "auto",
    chapters: Annotated[
        Literal["auto", "heading", "file", "none"],
        typer.Option(
            "--chapters",
            help="Chapters: auto (an EPUB's table of contents; none for other inputs), heading (top headings: "
            "Markdown's in text), file (each input file, each of an EPUB's documents), none.",
        ),
    ] = "auto",
    name_template: Annotated[
        str,
        typer.Option(
            "--name-template",
            help="Output names: {slug} (of the text), {hash} (of the text), {index}, {source}. "
            "A name with {index} changes when lines are inserted, and resume then re-makes those items.",
            metavar="TEMPLATE",
        ),
    ] = "{slug}-{hash}",
    format_out: Annotated[o.AudioFormat, typer.Option("--format-out", help="Audio file format.")] = "wav",
    concat_out: Annotated[
        Path | None,
        typer.Option(
            "--concat",
            help="Also join all items into this file; a .m4b or .m4a gets chapter marks, title, author and cover.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    chapters_out: Annotated[
        Path | None,
        typer.Option(
            "--chapters-out",
            help="Write the chapters' start times in --concat here: HH:MM:SS.mmm Title lines, or JSON for .json.",
            metavar="FILE",
            show_default=False,
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title", help="The .m4b/.m4a's title (default: the EPUB's).", metavar="TEXT", show_default=False
        ),
    ] = None,
    author: Annotated[
        str | None,
        typer.Option(
            "--author", help="The .m4b/.m4a's author (default: the EPUB's).", metavar="TEXT", show_default=False
        ),
    ] = None,
    cover: Annotated[
        Path | None,
        typer.Option(
            "--cover", help="The .m4b/.m4a's cover image (default: the EPUB's).", metavar="IMAGE", show_default=False
        ),
    ] = None,
    pause: Annotated[
        float | None, o.setting("pause", help="Seconds between sentences, and between items in --concat.")
    ] = None,
    voice: o.Voice = None,
    language: o.Language = None,
    speed: o.Speed = None,
    engine: o.Engine = None,
    model_dir: o.ModelDir = None,
    device: o.Device = None,
    precision: o.Precision = None,
    max_batch: o.MaxBatch = None,
    seed: o.Seed = None,
    verbatim: o.Verbatim = None,
    actions: o.Actions = None,
    lexicon: o.Lexicon = None,
    voices_dir: o.VoicesDir = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Redo items already done; overwrite --concat.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    quiet: o.Quiet = False,
    executor: Annotated[
        Literal["local", "ray"],
        typer.Option(
            "--executor",
            help="Where items are made: here, one at a time; or on a Ray actor pool, here or on a cluster "
            "(pip install 'speakcli[ray]').",
        ),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            envvar="SPEAKCLI_RAY_ADDRESS",
            metavar="ADDRESS",
            help="Ray: join the cluster whose head is at HOST:PORT (auto: one started on this machine); "
            "default: a local Ray for this run.",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, metavar="N", help="Ray: actors, each with its own model.  [default: 1]"),
    ] = None,
    gpus_per_worker: Annotated[
        float | None,
        typer.Option("--gpus-per-worker", min=0.0, metavar="GPUS", help="Ray: GPUs each actor reserves.  [default: 0]"),
    ] = None,
    cpus_per_worker: Annotated[
        float | None,
        typer.Option(
            "--cpus-per-worker",
            metavar="CPUS",
            help="Ray: CPUs each actor reserves; below 1 leaves Ray Data a CPU on small machines.  [default: 0.5]",
        ),
    ] = None,
    debug: o.Debug = False,
) -> int:
    """Speak many items in one run: one line, paragraph or file each, JSONL/CSV rows, or an EPUB's paragraphs;
    resumable."""
    from speakcli.batch import CHAPTER_MODES, BatchOptions, check_batch, read_book, run_batch
    from speakcli.cli.common import announce, format_named
    from speakcli.cli.progress import BatchProgress
    from speakcli.cli.scope import open_service
    from speakcli.errors import ExitStatus, UsageError
    from speakcli.settings import load_settings

    if split not in ("line", "paragraph", "file"):
        raise UsageError(f"--split {split!r}: use line, paragraph or file")
    if input_format not in ("auto", "text", "jsonl", "csv", "epub"):
        raise UsageError(f"--format {input_format!r}: use auto, text, jsonl, csv or epub")
    if chapters not in CHAPTER_MODES:
        raise UsageError(f"--chapters {chapters!r}: use {', '.join(CHAPTER_MODES)}")
    tagged = [flag for flag, value in (("--title", title), ("--author", author), ("--cover", cover)) if value]
    if tagged and (concat_out is None or concat_out.suffix.lower() not in (".m4b", ".m4a")):
        raise UsageError(f"{tagged[0]} tags the joined audiobook; add --concat FILE.m4b (or .m4a)")
    out_format = format_named(format_out, "--format-out").name  # raw is pcm
    if not inputs:
        if sys.stdin.isatty():
            raise UsageError(
                "no input; pass files, or '-' with text on stdin (e.g. grep x log | speakcli batch - -o out/)"
            )
        inputs = ["-"]
    options = BatchOptions(name_template, out_format, force, concat_out, chapters_out)
    check_batch(out_dir, options)
    settings = load_settings(
        {
            **o.engine_flags(engine, model_dir, device, voices_dir, precision),
            "voice": voice,
            "language": language,
            "speed": speed,
            "pause": pause,
            "max_batch": max_batch,
            "seed": seed,
            **o.text_flags(verbatim, actions, lexicon),
        }
    )
    # The book's own language unless the command gave one (--language wins over the book, the book over defaults).
    book = read_book(inputs, split, input_format, sys.stdin, chapters, book_language=language is None)  # type: ignore[arg-type]
    if concat_out is not None and concat_out.suffix.lower() in (".m4b", ".m4a"):
        options = replace(options, tags=book.tags(title, author, cover))
    pool = _executor(executor, ray_address, workers, gpus_per_worker, cpus_per_worker)  # after input errors
    service = open_service(settings)
    book.check_language(service)
    announce(service, quiet or as_json)

    stop = _Stop()
    progress = BatchProgress(book.items, disable=quiet or as_json)
    # The run writes files, never stdout: what a library prints meanwhile (Ray's driver prints its raylet's error
    # messages, such as a task being retried, to stdout) goes to stderr, so stdout holds the summary alone.
    with stop.installed(), progress, contextlib.redirect_stdout(sys.stderr):
        _, summary = run_batch(
            service,
            book.items,
            out_dir,
            options,
            pool,
            on_result=progress.advance,
            stop=stop,
            on_planned=progress.planned,
        )
    if as_json:
        print(json.dumps(asdict(summary), indent=2))
    elif not quiet:
        _print_summary(summary, progress.speed, out_dir)
    summary.raise_if_stopped()  # a full disk or a read-only folder stopped the run: exit 6, after the summary
    if summary.interrupted:
        return stop.exit_status
    return int(ExitStatus.PARTIAL) if summary.failed else 0


def _executor(
    name: str,
    address: str | None,
    workers: int | None,
    gpus: float | None,
    cpus: float | None,
) -> Executor | None:
    """The executor asked for (None: the local one); Ray is imported only here, and only when chosen."""
    from speakcli.errors import UsageError

    if name == "local":
        # Not --ray-address: it may come from SPEAKCLI_RAY_ADDRESS, set for every run, local ones included.
        given = [
            flag
            for flag, value in (
                ("--workers", workers),
                ("--gpus-per-worker", gpus),
                ("--cpus-per-worker", cpus),
            )
            if value is not None
        ]
        if given:
            raise UsageError(f"{given[0]} is for the Ray executor; add --executor ray")
        return None
    from speakcli.batch.ray_executor import RayExecutor, RayOptions

    defaults = RayOptions()
    return RayExecutor(
        RayOptions(
            address=address or None,
            workers=defaults.workers if workers is None else workers,
            gpus_per_worker=defaults.gpus_per_worker if gpus is None else gpus,
            cpus_per_worker=defaults.cpus_per_worker if cpus is None else cpus,
        )
    )


class _Stop:
    """Ctrl-C or SIGTERM once: stop after the current item (a `stop` for run_batch); a second either: quit now
    (KeyboardInterrupt). The first signal decides the exit code."""

    def __init__(self) -> None:
        self.first: int | None = None

    def __call__(self) -> bool:
        return self.first is not None

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.first is not None:
            raise KeyboardInterrupt
        self.first = signum
        if signum == signal.SIGINT:  # after the terminal's "^C"
            print("\nspeakcli: stopping after the current item (Ctrl-C again to quit now)", file=sys.stderr)
        else:
            print("speakcli: terminated; stopping after the current item (SIGTERM again to quit now)", file=sys.stderr)

    @property
    def exit_status(self) -> int:
        from speakcli.errors import ExitStatus

        return int(ExitStatus.TERMINATED if self.first == signal.SIGTERM else ExitStatus.INTERRUPTED)

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def _print_summary(summary: Summary, speed_x: float, out_dir: Path) -> None:
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
    if summary.concat is not None:
        marks = sum(1 for c in summary.chapters if c["start"] is not None)
        print(f"speakcli: joined into {summary.concat}{f' ({marks} chapters)' if marks else ''}", file=sys.stderr)
    for f in summary.failures[:20]:
        print(f"speakcli: failed: item {f['index']} ({f['source']}): {f['error']}", file=sys.stderr)
