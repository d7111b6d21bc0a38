"""`run_batch`: plan a batch, keep what an earlier run made, make the rest on an executor, manifest, join, summary."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from speakcli.audio import check_output_path, output_format, read_audio, write_audio
from speakcli.audio.audiobook import ChapterSpan, Tags, write_audiobook
from speakcli.audio.encode import AUDIO_FORMATS, available
from speakcli.audio.files import audio_frames
from speakcli.batch.chapters import Mark, chapter_marks, chapter_table, chapters_file, check_chapters_out
from speakcli.batch.executor import Executor, LocalExecutor, Task
from speakcli.batch.items import Item
from speakcli.batch.manifest import Manifest, Result, done_record, load_manifest
from speakcli.batch.plan import DEFAULT_TEMPLATE, check_template, plan_outputs, resolve_settings
from speakcli.errors import Hint, OutputError, SpeakError, UnwritableError, UsageError
from speakcli.fsutil import atomic_write, check_folder, clean_stale_parts, write_error
from speakcli.settings import Settings
from speakcli.speakable import Speakable

if TYPE_CHECKING:
    from speakcli.service import SpeechService


@dataclass(frozen=True)
class BatchOptions:
    """How a batch names and writes its files."""

    name_template: str = DEFAULT_TEMPLATE
    format_out: str = "wav"  # a name from speakcli.audio.encode.AUDIO_FORMATS
    force: bool = False  # redo items an earlier run made; replace the concat file
    concat: Path | None = None  # also join every made item into this file
    chapters_out: Path | None = None  # and write its chapter marks here (text, or JSON for a .json name)
    tags: Tags = field(default_factory=Tags)  # the joined file's title, author and cover (M4A and M4B carry them)

    @property
    def ext(self) -> str:
        return f".{self.format_out}"


@dataclass
class Summary:
    total: int = 0
    ok: int = 0  # made by this run
    already_done: int = 0  # made by an earlier run, same content, kept
    skipped: int = 0  # nothing to say
    failed: int = 0
    removed: int = 0  # files of earlier runs whose item is no longer in the input (kept on disk)
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False
    # Why the run stopped part way: a write that would fail for every item (a full disk, a read-only folder).
    stopped: str | None = None
    concat: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    # Each chapter: number, title, first and last item, and its start in --concat (None without one).
    chapters: list[dict[str, Any]] = field(default_factory=list)

    def add(self, result: Result) -> None:
        self.audio_seconds += result.audio_seconds
        if result.status == "ok":
            if result.kept:
                self.already_done += 1
            else:
                self.ok += 1
        elif result.status == "skipped":
            self.skipped += 1
        else:
            self.failed += 1
            self.failures.append(
                {"index": result.index, "source": result.source, "chapter": result.chapter, "error": result.error}
            )

    def raise_if_stopped(self) -> None:
        """Raise the error that stopped the run part way (exit 6), once the summary has been shown."""
        if self.stopped is not None:
            raise UnwritableError(self.stopped, hint=Hint.OUTPUT_DIR)


def check_batch(out_dir: Path, options: BatchOptions) -> None:
    """Refuse now what would fail the whole run: call it before loading a model."""
    if options.format_out not in AUDIO_FORMATS:
        raise UsageError(f"output format {options.format_out!r} is unknown; use {', '.join(AUDIO_FORMATS)}")
    available(AUDIO_FORMATS[options.format_out])  # AAC and M4A need PyAV: say so before any work
    check_folder(out_dir)
    check_template(options.name_template)
    if options.concat is not None:
        check_output_path(options.concat, options.force)
    check_chapters_out(options.chapters_out, options.concat, options.force)


def run_batch(
    service: SpeechService,
    items: list[Item],
    out_dir: Path,
    options: BatchOptions | None = None,
    executor: Executor | None = None,
    on_result: Callable[[Result], None] = lambda result: None,
    stop: Callable[[], bool] = lambda: False,
    on_planned: Callable[[Sequence[Task]], None] = lambda tasks: None,
) -> tuple[list[Result], Summary]:
    """Speak `items` (from `read_items`) into `out_dir`: plan names and keys, keep what an earlier run made
    (unless `force`), make the rest on `executor` (default: here, on the service's worker), keep the
    manifest, and join the made items when asked. A bad item fails alone; what concerns the whole run (a bad
    template, a default voice or language the engine cannot use) raises before anything is made.

    `on_planned` sees the tasks once planned (which items an earlier run made), `on_result` each item's result as
    it finishes; once `stop()` is true no new item is started, and the
    summary says `interrupted`. Ctrl-C (KeyboardInterrupt) also ends the run with a summary. A write that would
    fail for every item (a full disk, a read-only folder: `UnwritableError`) ends the run at once, the summary
    saying why in `stopped` (see `Summary.raise_if_stopped`); the manifest keeps what was made.
    """
    options = options or BatchOptions()
    check_batch(out_dir, options)
    resolved = {item.index: resolve_settings(item, service.settings) for item in items if _to_make(item)}
    todo = [item for item in items if _to_make(item)]
    # A bad default voice or language is the whole run's problem: say so now, not once per item.
    if any(item.voice is None for item in todo):
        service.voice(None)
    if any(item.language is None for item in todo):
        service.options(stream=False)
    engine_id = f"{service.spec.name}:{service.spec.model_dir}"
    plan_outputs(items, out_dir, options.name_template, options.ext, engine_id, _key_settings(service, resolved))

    with _writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
        clean_stale_parts(out_dir)  # this run owns the folder: temps left there are from a killed run
        previous = {} if options.force else load_manifest(out_dir)
        manifest = Manifest(out_dir)
    tasks = [Task(item, resolved.get(item.index), done_record(item, out_dir, previous)) for item in items]
    summary = Summary(total=len(items))
    results: list[Result] = []
    on_planned(tasks)

    def record(result: Result) -> None:
        results.append(result)
        with _writing(out_dir):
            manifest.append(result)
        summary.add(result)
        on_result(result)

    started = time.monotonic()
    finished = False
    try:
        (executor or LocalExecutor()).run(service, tasks, out_dir, record, stop)
        summary.interrupted = len(results) < len(tasks)
        finished = True
    except KeyboardInterrupt:
        # Ctrl-C twice: the item in progress is dropped (its file is written whole or not at all); what is
        # done is kept, and the summary still comes.
        summary.interrupted = finished = True
    except UnwritableError as exc:
        # Every later item would be made only to fail the same way: stop now, keep what was made.
        summary.stopped = str(exc)
    finally:
        try:
            with _writing(out_dir):
                summary.removed = manifest.close(items, results)
        except OutputError:
            if finished:  # else the run's own error is the one to report
                raise
        summary.wall_seconds = time.monotonic() - started
    results.sort(key=lambda r: r.index)  # an executor may finish items out of order
    marks: list[Mark] = []
    if options.concat is not None and not summary.interrupted and summary.stopped is None:
        marks = join(results, out_dir, options, service.sample_rate, service.options().gap)
        summary.concat = str(options.concat)
    summary.chapters = chapter_table(items, marks)
    return results, summary


def join(results: list[Result], out_dir: Path, options: BatchOptions, sample_rate: int, pause: float) -> list[Mark]:
    """Join the made items into `options.concat` and write its chapters side file; returns its chapter marks.

    Each chapter starts at its first made item: the items' lengths are read first, so an M4A or M4B gets its
    marks (and its tags) as it is written, an item at a time.
    """
    assert options.concat is not None
    made = [r for r in results if r.status == "ok" and r.output]
    paths = [out_dir / str(r.output) for r in made]
    gap = round(pause * sample_rate)
    starts, at = [], 0
    for path in paths:
        starts.append(at / sample_rate)
        at += audio_frames(path) + gap
    length = max(0, at - gap) / sample_rate if paths else 0.0
    marks = chapter_marks(made, starts, length)
    concat(
        paths, options.concat, sample_rate, pause, [ChapterSpan(m.title, m.start, m.end) for m in marks], options.tags
    )
    if options.chapters_out is not None:
        with _writing(options.chapters_out.parent):
            atomic_write(options.chapters_out, chapters_file(marks, options.chapters_out))
    return marks


@contextlib.contextmanager
def _writing(out_dir: Path) -> Iterator[None]:
    """A failed write in the output folder (no permission, a full disk) is an output error, exit 6, not a crash."""
    try:
        yield
    except OSError as exc:
        raise write_error(f"cannot write in {out_dir}", exc, hint=Hint.OUTPUT_DIR) from None


def _to_make(item: Item) -> bool:
    return item.error is None and item.skip is None


def _key_settings(service: SpeechService, resolved: dict[int, Settings | None]) -> Callable[[Item], Any]:
    """What the run's settings decide for an item, for its key: a changed voice, language, speed, pause,
    temperature, seed or text step (verbatim, actions, the lexicon's words) re-makes it."""
    voices: dict[str | None, Any] = {}
    text = service.speakable.identity

    def voice_id(name: str | None) -> Any:
        # The voice as resolved now, clips' sizes and times included: re-recording a voice re-makes its items.
        try:
            v = service.voice(name)
        except SpeakError as exc:
            return f"unusable: {exc}"  # the item fails when it is made, and is retried next run
        if v is None:
            return None
        clips = [(str(c), c.stat().st_size, c.stat().st_mtime_ns) for c in v.clips if c.exists()]
        return [v.name, v.speaker, clips]

    def settings_of(item: Item) -> Any:
        s = resolved[item.index]
        assert s is not None  # planned items are valid ones
        if s.voice not in voices:
            voices[s.voice] = voice_id(s.voice)
        key = [voices[s.voice], s.language, s.speed, s.pause, s.temperature]
        key = key if s.seed is None else [*key, s.seed]  # unseeded runs keep the keys they always had
        # The text step (Markdown, actions, the lexicon's words) decides what is said: another one re-makes it.
        return key if text == Speakable().identity else [*key, {"text": text}]

    return settings_of


def concat(
    paths: list[Path],
    out: Path,
    sample_rate: int,
    pause: float,
    chapters: Sequence[ChapterSpan] = (),
    tags: Tags | None = None,
) -> None:
    """Join finished items into one file with `pause` seconds between. An M4A or M4B is written an item at a time,
    with `chapters` and `tags`; another format whole (its encoders take the audio in one piece)."""
    if output_format(out).name == "m4a":
        write_audiobook(out, _parts(paths, sample_rate, pause), sample_rate, chapters, tags or Tags())
        return
    parts = list(_parts(paths, sample_rate, pause))
    write_audio(out, np.concatenate(parts) if parts else np.zeros(0, np.float32), sample_rate)


def _parts(paths: list[Path], sample_rate: int, pause: float) -> Iterator[np.ndarray]:
    gap = np.zeros(round(pause * sample_rate), np.float32)
    for i, path in enumerate(paths):
        audio, rate = read_audio(path)
        if rate != sample_rate:
            raise OutputError(f"{path} is {rate} Hz, not {sample_rate} Hz", hint=Hint.FORCE)
        if i:
            yield gap
        yield audio
