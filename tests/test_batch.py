"""batch: every input kind, safe names, row-level failures, resume after kill -9, Ctrl-C, concat."""

from __future__ import annotations

import errno
import json
import os
import pickle
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from helpers import run_cli
from speakcli.batch import (
    DEFAULT_TEMPLATE,
    BatchOptions,
    Item,
    Result,
    Task,
    make_items,
    plan_outputs,
    read_items,
    run_batch,
    safe_name,
    text_hash,
)
from speakcli.errors import ExitStatus, FormatUnavailableError, OutputError, SpeakError, UnwritableError, UsageError
from speakcli.fsutil import write_error
from speakcli.settings import Settings
from speakcli.testing import FunctionJob, FunctionService


def _manifest(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


# --- reading and naming, no engine ------------------------------------------------------------------


def test_text_splits(tmp_path: Path) -> None:
    src = tmp_path / "book.txt"
    src.write_text("Para one, line one.\nPara one, line two.\n\n\nPara two.\n")
    assert [(i.source, i.text) for i in read_items([str(src)])] == [
        ("book.txt:1", "Para one, line one."),
        ("book.txt:2", "Para one, line two."),
        ("book.txt:5", "Para two."),
    ]
    assert [i.text for i in read_items([str(src)], "paragraph")] == [
        "Para one, line one. Para one, line two.",
        "Para two.",
    ]
    (whole,) = read_items([str(src)], "file")
    assert whole.text.split() == src.read_text().split() and whole.index == 1


def test_jsonl_rows_fail_alone_and_empty_rows_are_skipped(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "ok", "voice": "joe", "speed": 1.5}\n[1]\n{"text": ""}\n{"text": "x", "pitch": 2}\n{bad\n'
        '{"voice": "joe"}\n{"text": 5}\n{"text": "... !!! ???"}\n{"text": "\\u0000\\u0007"}\n' + "[" * 5000 + "\n"
    )
    items = read_items([str(rows)])
    assert items[0].text == "ok" and items[0].voice == "joe" and items[0].speed == 1.5 and items[0].error is None
    assert [(i.source, i.error, i.skip) for i in items[1:]] == [
        ("rows.jsonl:2", "not a JSON object", None),
        ("rows.jsonl:3", None, "empty"),
        ("rows.jsonl:4", "unknown field(s) pitch; use text, voice, language, out, speed", None),
        ("rows.jsonl:5", "invalid JSON at column 2 (Expecting property name enclosed in double quotes)", None),
        ("rows.jsonl:6", "no text", None),
        ("rows.jsonl:7", "text must be a string", None),
        ("rows.jsonl:8", None, "nothing to say (only punctuation or symbols)"),
        ("rows.jsonl:9", None, "nothing to say (only punctuation or symbols)"),
        ("rows.jsonl:10", "invalid JSON at column 1 (nested too deeply)", None),  # past the parser's recursion
    ]


def test_csv_rows_follow_the_csv_rules(tmp_path: Path) -> None:
    table = tmp_path / "t.csv"
    table.write_text('text,language,out\n"Hello, there",en,hello\n\n"Two\nlines, ""quoted""",,two\n,en,empty\n')
    items = read_items([str(table)])
    assert [(i.source, i.text, i.language, i.out, i.skip) for i in items] == [
        ("t.csv:2", "Hello, there", "en", "hello", None),
        ("t.csv:4", 'Two\nlines, "quoted"', None, "two", None),
        ("t.csv:6", "", "en", "empty", "empty"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        # An unquoted comma: the csv module makes it two fields; the text must not be cut to "Hello".
        ("text\nFine.\nHello, world and more\n", r"t\.csv:3: 2 field\(s\), but the header has 1; quote text"),
        ("text,voice\nA,joe\n\nB\n", r"t\.csv:4: 1 field\(s\), but the header has 2; give every column"),
        ("text\na\nb,c\nd,e\n", r"t\.csv:3: .*\(also line\(s\) 4\)"),
        ('text\n"Never closed\nmore\n', r"t\.csv:2: not valid CSV"),
        ("text,text\na,b\n", r"t\.csv:1: column\(s\) text given twice"),
        ("text,emotion\nhi,happy\n", r"t\.csv:1: unknown column.*emotion"),
        ("voice\njoe\n", r"t\.csv:1: no 'text' column"),
        ("", r"t\.csv is empty"),
    ],
)
def test_csv_rows_that_do_not_fit_refuse_the_file(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "t.csv").write_text(content)
    with pytest.raises(UsageError, match=message):
        read_items([str(tmp_path / "t.csv")])


def test_csv_misfit_exits_2_before_any_synthesis(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("text\nFine.\nHello, world and more\n")
    result = run_cli("batch", str(tmp_path / "t.csv"), "-o", str(tmp_path / "out"), "--engine", "piper")
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.decode().splitlines() == [
        'speakcli: error: t.csv:3: 2 field(s), but the header has 1; quote text that holds a comma ("Hello, world")'
    ]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("../../etc/passwd", "passwd.wav"),
        ("/abs/path/x.wav", "x.wav"),
        ("a\\..\\b.flac", "b.wav"),
        ("..", "item.wav"),
        ("name with spaces", "name with spaces.wav"),
        ("evil\x00.wav", "evil_.wav"),
    ],
)
def test_output_names_stay_inside_the_folder(given: str, expected: str) -> None:
    assert safe_name(given, ".wav") == expected


def test_duplicate_names_fail_the_later_row(tmp_path: Path) -> None:
    items = [Item(1, "a:1", "one", out="same"), Item(2, "a:2", "two", out="../same.wav"), Item(3, "a:3", "three")]
    plan_outputs(items, tmp_path, "{index:04d}-{slug}", ".wav", "engine")
    assert items[0].output == "same.wav" and items[2].output == "0003-three.wav"
    assert items[1].error == "output name 'same.wav' is already used by item 1"


def test_names_stay_put_when_lines_are_inserted_and_duplicates_get_numbers(tmp_path: Path) -> None:
    def names(texts: list[str], outs: dict[int, str] | None = None) -> list[str | None]:
        items = [Item(i, f"b:{i}", t, out=(outs or {}).get(i)) for i, t in enumerate(texts, 1)]
        plan_outputs(items, tmp_path, DEFAULT_TEMPLATE, ".wav", "engine")
        return [i.output for i in items]

    before = names(["Chapter one.", "Hello!", "Hello?", "Chapter one."])
    assert before == [
        f"chapter-one-{text_hash('Chapter one.')}.wav",
        f"hello-{text_hash('Hello!')}.wav",  # the same slug, told apart by the hash of the text
        f"hello-{text_hash('Hello?')}.wav",
        f"chapter-one-{text_hash('Chapter one.')}-2.wav",  # the same text twice
    ]
    assert len(set(before)) == 4
    after = names(["A new first line.", "Chapter one.", "Hello!", "Hello?", "Chapter one."])
    assert after[1:] == before
    # An explicit name wins over a generated one, wherever the explicit row is.
    clash = names(["Hi.", "Other."], {2: f"hi-{text_hash('Hi.')}"})
    assert clash == [f"hi-{text_hash('Hi.')}-2.wav", f"hi-{text_hash('Hi.')}.wav"]


def test_key_follows_the_content_and_the_settings(tmp_path: Path) -> None:
    def key(text: str = "Hi.", voice: str | None = None, extra: object = None) -> str:
        item = Item(1, "a:1", text, voice=voice)
        plan_outputs([item], tmp_path, DEFAULT_TEMPLATE, ".wav", "engine", lambda i: extra)
        return item.key

    keys = [key(), key("Hi!"), key(voice="ann"), key(extra=["joe", "de", 1.0])]
    assert len(set(keys)) == 4 and key() == keys[0]


@pytest.mark.parametrize("change", [{"pause": 0.5}, {"temperature": 0.3}, {"speed": 1.5}])
def test_a_rerun_with_another_setting_of_the_key_remakes_every_item(tmp_path: Path, change: dict[str, float]) -> None:
    # The settings that decide the audio are in each item's key: another --pause (silence between sentences) or
    # XTTS temperature makes other audio, so a resume must not keep the files; the same settings keep them all.
    def run(settings: Settings) -> tuple[int, int, list[str]]:
        service: Any = FunctionService(lambda text: np.full(100 + len(text), 0.1, np.float32), settings)
        results, summary = run_batch(service, [Item(1, "b:1", "One."), Item(2, "b:2", "Two.")], tmp_path)
        return summary.ok, summary.already_done, [r.output or "" for r in results]

    made, kept, names = run(Settings())
    assert (made, kept) == (2, 0)
    assert run(Settings()) == (0, 2, names)
    assert run(replace(Settings(), **change)) == (2, 0, names)  # made again, under the same names
    assert run(replace(Settings(), **change)) == (0, 2, names)


def test_a_stopped_run_keeps_the_records_of_items_it_did_not_reach(tmp_path: Path) -> None:
    # run_batch with a plain function as its engine: real files and manifest, no model needed.
    service: Any = FunctionService(lambda text: np.full(100 + len(text), 0.1, np.float32))

    def run(texts: list[str], stop_after: int | None = None) -> tuple[list[dict], dict]:
        items = [Item(i, f"b:{i}", t) for i, t in enumerate(texts, 1)]
        made: list[Result] = []
        stop = (lambda: len(made) >= stop_after) if stop_after is not None else (lambda: False)
        _, summary = run_batch(service, items, tmp_path, on_result=made.append, stop=stop)
        return _manifest(tmp_path), asdict(summary)

    texts = ["One.", "Two.", "Three.", "Four."]
    first, _ = run(texts)
    records, summary = run(["Zero.", *texts], stop_after=1)  # Ctrl-C after the new first item
    assert summary["interrupted"] and summary["ok"] == 1
    assert [(r["index"], r["text"], r["status"]) for r in records] == [
        (1, "Zero.", "ok"),
        *((i, t, "ok") for i, t in enumerate(texts, 2)),
    ]
    assert [r["synthesis_seconds"] for r in records[1:]] == [r["synthesis_seconds"] for r in first] == [0.5] * 4
    _, summary = run(["Zero.", *texts])
    assert (summary["ok"], summary["already_done"]) == (0, 5)


def test_files_listed_by_an_older_manifest_are_kept_as_removed(tmp_path: Path) -> None:
    # Before content keys, a file kept by a resume was listed as "skipped" under its index-based name.
    (tmp_path / "0001-old.wav").write_bytes(b"x" * 10)
    old = {"index": 1, "output": "0001-old.wav", "status": "skipped", "bytes": 10, "text": "Old.", "key": "k"}
    gone = {**old, "output": "0002-gone.wav"}  # its file was deleted by the user: not listed any more
    (tmp_path / "manifest.jsonl").write_text(json.dumps(old) + "\n" + json.dumps(gone) + "\n")
    items = [Item(1, "b:1", "New.")]
    service: Any = FunctionService(lambda text: np.zeros(80, np.float32))
    _, summary = run_batch(service, items, tmp_path, BatchOptions())
    assert summary.removed == 1
    assert [(r["output"], r["status"], r["index"]) for r in _manifest(tmp_path)] == [
        (items[0].output, "ok", 1),
        ("0001-old.wav", "removed", None),
    ]
    assert (tmp_path / "0001-old.wav").read_bytes() == b"x" * 10


def test_an_item_speed_out_of_range_fails_alone(tmp_path: Path) -> None:
    service: Any = FunctionService(lambda text: np.zeros(80, np.float32))
    items = [Item(1, "b:1", "Fast.", speed=9.0), Item(2, "b:2", "Still.", speed=0.0), Item(3, "b:3", "Fine.")]
    results, summary = run_batch(service, items, tmp_path)
    assert (summary.ok, summary.failed) == (1, 2)
    assert [r.status for r in results] == ["failed", "failed", "ok"]
    assert all("out of range" in (r.error or "") for r in results[:2])


def test_a_run_is_refused_before_anything_is_made(tmp_path: Path) -> None:
    service: Any = FunctionService(lambda text: np.zeros(80, np.float32))
    tmp_path /= "work"  # tmp_path also holds the test's home folder
    tmp_path.mkdir()
    (tmp_path / "file").write_text("x")
    for out, options, error in [
        (
            tmp_path / "o",
            BatchOptions(format_out="wma"),
            r"output format 'wma' is unknown; use wav, flac, ogg, opus, mp3, aac, m4a, pcm",
        ),
        (tmp_path / "file", BatchOptions(), "is a file, not a folder"),
        (tmp_path / "o", BatchOptions(name_template="{nope}"), r"unknown field \{nope\}"),
    ]:
        with pytest.raises(SpeakError, match=error):
            run_batch(service, [Item(1, "b:1", "Hi.")], out, options)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_m4a_without_pyav_is_refused_before_anything_is_made(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str] = []
    service: Any = FunctionService(lambda text: made.append(text) or np.zeros(80, np.float32))
    monkeypatch.setitem(sys.modules, "av", None)  # as if PyAV were not installed
    with pytest.raises(FormatUnavailableError, match=r"pip install 'speakcli\[aac\]'"):
        run_batch(service, [Item(1, "b:1", "Hi.")], tmp_path / "o", BatchOptions(format_out="m4a"))
    assert made == [] and not (tmp_path / "o").exists()


def test_another_executor_plugs_in_and_may_finish_out_of_order(tmp_path: Path) -> None:
    # An executor that makes items last first, as a pool of workers may: run_batch still keeps the manifest
    # in input order, and concat joins the items in input order.
    class LastFirst:
        def run(
            self,
            service: Any,
            tasks: Sequence[Task],
            out_dir: Path,
            on_result: Callable[[Result], None],
            stop: Callable[[], bool],
        ) -> list[Result]:
            results = []
            for task in reversed(tasks):
                assert task.settings is not None and pickle.loads(pickle.dumps(task)) == task
                result = next(make_items(service, [task], out_dir))
                results.append(result)
                on_result(result)
            return results

    lengths = {"One.": 100, "Two.": 200}
    service: Any = FunctionService(lambda text: np.full(lengths[text], 0.1, np.float32))
    items = [Item(1, "b:1", "One."), Item(2, "b:2", "Two.")]
    seen: list[int] = []
    joined = tmp_path / "all.wav"
    options = BatchOptions(concat=joined)
    results, summary = run_batch(
        service, items, tmp_path / "out", options, LastFirst(), on_result=lambda r: seen.append(r.index)
    )
    assert seen == [2, 1] and [r.index for r in results] == [1, 2] and summary.ok == 2
    assert [r["index"] for r in _manifest(tmp_path / "out")] == [1, 2]
    audio, _ = sf.read(joined, dtype="float32")
    pause = round(service.settings.pause * service.sample_rate)
    assert len(audio) == 300 + pause and not audio[100 : 100 + pause].any() and audio[100 + pause :].all()


# --- the CLI with the Piper voice ------------------------------------------------------------------


@pytest.mark.slow
def test_stdin_batch_with_progress_summary_and_concat(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old_umask = os.umask(0o027)  # the child inherits it; not 022, so a hard-coded 0644 would show
    try:
        result = run_cli(
            "batch",
            "-",
            "-o",
            str(out),
            "--engine",
            "piper",
            "--concat",
            str(tmp_path / "all.wav"),
            "--pause",
            "0.5",
            "--json",
            input=b"One.\nTwo two.\n\n... !!! ???\nThree three three.\n",
        )
    finally:
        os.umask(old_umask)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["ok"], summary["skipped"], summary["failed"]) == (4, 3, 1, 0)
    files = [f"{slug}-{text_hash(text)}.wav" for slug, text in [("one", "One."), ("two-two", "Two two.")]]
    files.append(f"three-three-three-{text_hash('Three three three.')}.wav")
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(files)
    lengths = [sf.info(out / f).frames for f in files]
    rate = sf.info(out / files[0]).samplerate
    assert sf.info(tmp_path / "all.wav").frames == sum(lengths) + 2 * int(0.5 * rate)
    for path in [*(out / f for f in files), out / "manifest.jsonl", tmp_path / "all.wav"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, path
    records = _manifest(out)
    assert [(r["source"], r["output"], r["status"]) for r in records] == [
        ("stdin:1", files[0], "ok"),
        ("stdin:2", files[1], "ok"),
        ("stdin:4", None, "skipped"),  # not vocalised: no file
        ("stdin:5", files[2], "ok"),
    ]
    assert records[2]["reason"] == "nothing to say (only punctuation or symbols)"
    ok = [r for r in records if r["status"] == "ok"]
    assert all(r["audio_seconds"] > 0 and r["synthesis_seconds"] > 0 and not r["kept"] for r in ok)


@pytest.mark.slow
def test_bad_rows_and_traversal_attempts(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "Escape one.", "out": "../../escaped.wav"}\n'
        '{"text": "Escape two.", "out": "/tmp/abs-escape"}\n'
        '{"text": "Wrong language.", "language": "de"}\n'
        '{"text": "Bad speed.", "speed": 9}\n'
        '{"text": "Fine.", "out": "fine.flac"}\n'
        '{"text": "Unusable voice.", "voice": "anna"}\n'
        '{"text": "A nul\\u0000byte.", "out": "nul"}\n'
    )
    out = tmp_path / "out"
    result = run_cli("batch", str(rows), "-o", str(out), "--engine", "piper", "--format-out", "flac")
    assert result.returncode == ExitStatus.PARTIAL
    names = ["abs-escape.flac", "escaped.flac", "fine.flac", "manifest.jsonl", "nul.flac"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert not (tmp_path / "escaped.wav").exists() and not Path("/tmp/abs-escape").exists()
    failed = {r["index"]: r["error"] for r in _manifest(out) if r["status"] == "failed"}
    assert "not supported by the piper engine" in failed[3] and "out of range" in failed[4]
    assert "voice 'anna' needs XTTS" in failed[6] and failed.keys() == {3, 4, 6}
    assert b"failed: item 3" in result.stderr and b"Traceback" not in result.stderr


@pytest.mark.slow
def test_resume_after_kill_9_leaves_only_whole_files_and_finishes(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_text("".join(f"This is line number {i}, spoken in a batch.\n" for i in range(12)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speakcli", "batch", str(src), "-o", str(out), "--engine", "piper", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ((out / "manifest.jsonl").exists() and len((out / "manifest.jsonl").read_text().splitlines()) >= 3):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)  # watching another process's file: there is no event to wait on
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()  # type: ignore[union-attr]
    done_before = {p.name for p in out.glob("*.wav")}
    timings = {r["output"]: r["synthesis_seconds"] for r in _manifest(out)}
    assert 3 <= len(done_before) < 12
    for p in done_before:
        data, _ = sf.read(out / p)  # every visible file is whole
        assert len(data) > 1000
    again = run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["already_done"] >= len(done_before) - 1 and summary["ok"] + summary["already_done"] == 12
    assert len(list(out.glob("*.wav"))) == 12 and not list(out.glob(".*.part"))
    records = _manifest(out)
    assert [r["index"] for r in records] == list(range(1, 13))
    kept = [r for r in records if r["kept"]]
    assert len(kept) == summary["already_done"]
    assert all(r["status"] == "ok" and r["synthesis_seconds"] == timings[r["output"]] > 0 for r in kept)


@pytest.mark.slow
def test_changed_text_is_redone_on_resume(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_text("Alpha.\nBeta.\n")
    out = tmp_path / "out"
    assert run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--name-template", "{index}").returncode == 0
    src.write_text("Alpha.\nGamma.\n")
    summary = json.loads(
        run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--name-template", "{index}", "--json").stdout
    )
    assert (summary["already_done"], summary["ok"]) == (1, 1)
    assert next(r for r in _manifest(out) if r["output"] == "2.wav")["text"] == "Gamma."
    forced = run_cli(
        "batch", str(src), "-o", str(out), "--engine", "piper", "--name-template", "{index}", "--json", "-f"
    )
    assert (json.loads(forced.stdout)["ok"], json.loads(forced.stdout)["already_done"]) == (2, 0)


@pytest.mark.slow
def test_resume_after_edits_remakes_only_what_changed(tmp_path: Path) -> None:
    lines = [f"Sentence number {n}, from the book." for n in ("one", "two", "three", "four", "five", "six")]
    src = tmp_path / "book.txt"
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"

    def run(*extra: str) -> dict:
        result = run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--json", *extra)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    run()
    first = {r["text"]: r for r in _manifest(out)}
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.wav")}
    edited = [
        "An inserted first line.",
        lines[0],
        lines[1],
        "Sentence number three, rewritten.",
        *lines[3:4],
        *lines[5:],
    ]
    src.write_text("\n".join(edited) + "\n")
    summary = run()
    assert (summary["ok"], summary["already_done"], summary["removed"]) == (2, 4, 2)
    # Nothing was renamed, rewritten or deleted: the old files are all there, untouched, and two new ones.
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in out.glob("*.wav") if p.name in stamps} == stamps
    assert len(list(out.glob("*.wav"))) == len(stamps) + 2
    records = _manifest(out)
    current, removed = records[:6], records[6:]
    assert [(r["index"], r["text"], r["kept"]) for r in current] == [
        (i, text, text in first) for i, text in enumerate(edited, 1)
    ]
    for r in current:
        if r["kept"]:  # the timings of the run that made it, not 0
            old = first[r["text"]]
            assert (r["output"], r["synthesis_seconds"], r["bytes"]) == (
                old["output"],
                old["synthesis_seconds"],
                old["bytes"],
            )
            assert r["synthesis_seconds"] > 0
    assert sorted((r["status"], r["index"], r["text"]) for r in removed) == sorted(
        [("removed", None, lines[2]), ("removed", None, lines[4])]
    )
    # A line that comes back finds its file: nothing to make.
    src.write_text("\n".join([*edited, lines[4]]) + "\n")
    summary = run()
    assert (summary["ok"], summary["already_done"], summary["removed"]) == (0, 7, 1)
    # The run's settings are part of each item's key: another speed re-makes every item, under the same names.
    summary = run("--speed", "1.25")
    assert (summary["ok"], summary["already_done"], summary["removed"]) == (7, 0, 1)
    assert len(list(out.glob("*.wav"))) == len(stamps) + 2


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "code"), [(signal.SIGINT, ExitStatus.INTERRUPTED), (signal.SIGTERM, ExitStatus.TERMINATED)]
)
def test_ctrl_c_or_sigterm_stops_after_the_current_item(tmp_path: Path, sig: int, code: int) -> None:
    src = tmp_path / "lines.txt"
    src.write_text("".join(f"Line {i} of a long batch that takes a while.\n" for i in range(200)))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakcli", "batch", str(src), "-o", str(out), "--engine", "piper"],
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while not (out / "manifest.jsonl").exists() or not (out / "manifest.jsonl").read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == code
    assert b"stopping after the current item" in err and b"(interrupted)" in err
    records = _manifest(out)
    assert 1 <= len(records) < 200 and all(r["status"] == "ok" for r in records)
    assert len(list(out.glob("*.wav"))) == len(records)


@pytest.mark.slow
def test_ctrl_c_twice_quits_now_with_a_summary(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    long_line = "This sentence is one of many in a very long line, to keep the engine busy for a while. " * 8
    src.write_text("Start.\n" + "".join(f"{i}. {long_line}\n" for i in range(50)))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "speakcli", "batch", str(src), "-o", str(out), "--engine", "piper"],
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while not (out / "manifest.jsonl").exists() or not (out / "manifest.jsonl").read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    lines = [proc.stderr.readline()]  # the handler has run once it says so; then the second press counts
    while b"stopping after the current item" not in lines[-1]:
        lines.append(proc.stderr.readline())
        assert lines[-1], lines
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert b"(interrupted)" in err and b"Traceback" not in err
    records = _manifest(out)
    assert 1 <= len(records) < 50 and all(r["status"] == "ok" for r in records)
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["output"] for r in records)
    assert not list(out.glob(".*.part"))


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for args, code, message in [
        (["batch", "missing.txt", "-o", "o"], ExitStatus.USAGE, b"missing.txt does not exist"),
        (["batch", "-", "-o", str(tmp_path / "f")], ExitStatus.OUTPUT, b"is a file"),
        (["batch", "-", "-o", "o", "--split", "word"], ExitStatus.USAGE, b"--split"),
        (["batch", "-", "-o", "o", "--name-template", "{nope}"], ExitStatus.USAGE, b"--name-template"),
        (["batch", "-", "-o", "o", "--name-template", "{index[0]}"], ExitStatus.USAGE, b"unknown field {index[0]}"),
        (["batch", "-", "-o", "o", "--name-template", "{slug.__class__}"], ExitStatus.USAGE, b"--name-template"),
        (["batch", "-", "-o", "o", "--voice", "anna"], ExitStatus.VOICE, b"voice 'anna' needs XTTS; use --engine xtts"),
        (["batch", "-", "-o", "o", "-l", "de"], ExitStatus.USAGE, b"'de' is not supported by the piper engine"),
    ]:
        result = run_cli(*args, "--engine", "piper", input=b"hello\n")
        assert result.returncode == code and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.splitlines()) <= 2 and not (tmp_path / "o").exists()  # nothing was made


@pytest.mark.slow
@pytest.mark.xtts
def test_xtts_batch_computes_each_voice_once(tiny_xtts_dir: Path, tmp_path: Path, isolated_env: Path) -> None:
    rng = np.random.default_rng(1)
    for name in ("ann", "bob"):
        (isolated_env / ".local/share/speakcli/voices" / name).mkdir(parents=True)
        t = np.arange(22050 * 3) / 22050
        sig = 0.3 * np.sin(2 * np.pi * (100 if name == "ann" else 180) * t) + 0.01 * rng.standard_normal(len(t))
        sf.write(isolated_env / f".local/share/speakcli/voices/{name}/ref.wav", sig.astype(np.float32), 22050)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "".join(json.dumps({"text": f"Line {i}.", "voice": "ann" if i % 2 else "bob"}) + "\n" for i in range(6))
    )
    out = tmp_path / "out"
    result = run_cli("batch", str(rows), "-o", str(out), "--model-dir", str(tiny_xtts_dir), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ok"] == 6
    assert all(sf.info(p).samplerate == 24000 for p in out.glob("*.wav"))
    assert len(list((isolated_env / ".cache/speakcli/latents").glob("*.npz"))) == 2


@pytest.mark.slow
@pytest.mark.xtts
def test_xtts_items_that_fail_fail_alone(tiny_xtts_dir: Path, tmp_path: Path, isolated_env: Path) -> None:
    # Real failures, no mocks: a saved voice whose clip is 10 samples long (torch's own RuntimeError inside the
    # engine, not a speakcli error) and one whose clip is not audio at all (a VoiceError).
    voices = isolated_env / ".local/share/speakcli/voices"
    (voices / "short").mkdir(parents=True)
    sf.write(voices / "short/ref.wav", np.full(10, 0.1, np.float32), 22050)
    (voices / "broken").mkdir(parents=True)
    (voices / "broken/ref.wav").write_bytes(b"RIFF but not really a wave file" * 10)
    rows = tmp_path / "rows.jsonl"
    texts = [{"text": "First."}, {"text": "Too short.", "voice": "short"}, {"text": "Not audio.", "voice": "broken"}]
    rows.write_text("".join(json.dumps(row) + "\n" for row in [*texts, {"text": "Last."}]))
    out = tmp_path / "out"
    result = run_cli("batch", str(rows), "-o", str(out), "--model-dir", str(tiny_xtts_dir), "--json")
    assert result.returncode == ExitStatus.PARTIAL, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["ok"], summary["failed"]) == (2, 2)
    records = _manifest(out)
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "ok"]
    assert records[1]["error"] and "cannot read" in records[2]["error"]
    assert sorted(p.name for p in out.glob("*.wav")) == sorted(r["output"] for r in records if r["status"] == "ok")
    assert b"Traceback" not in result.stderr


@pytest.mark.slow
def test_an_output_folder_that_cannot_be_written_is_exit_6_in_one_line() -> None:
    # /proc refuses new folders even to root: a real write failure, not a mock.
    result = run_cli("batch", "-", "-o", "/proc/speakcli-out", "--engine", "piper", input=b"Hello there.\n")
    assert result.returncode == ExitStatus.OUTPUT, result.stderr
    lines = result.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "cannot write in /proc/speakcli-out" in lines[0] and "--output-dir" in lines[0]


@pytest.mark.slow
def test_a_write_that_would_fail_for_every_item_stops_the_run_with_exit_6(tmp_path: Path) -> None:
    # A real write failure, unprivileged: a file size limit (RLIMIT_FSIZE) below one item's audio and above the
    # manifest's size, so writing the first new item fails with EFBIG, as a full disk fails with ENOSPC.
    import resource

    lines = ["First line.", "Second line.", "Third line, too long to write.", "Fourth line, never made."]
    out = tmp_path / "out"

    def run(texts: list[str], limit: int | None = None) -> subprocess.CompletedProcess[bytes]:
        def small_files() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        data = "".join(t + "\n" for t in texts).encode()
        return run_cli("batch", "-", "-d", str(out), "--engine", "piper", "--json", input=data, preexec_fn=small_files)

    assert run(lines[:2]).returncode == 0
    made = sorted(out.glob("*.wav"))
    result = run(lines, limit=16 * 1024)
    assert result.returncode == ExitStatus.OUTPUT, result.stderr
    error = result.stderr.decode().strip().splitlines()
    assert len(error) == 1 and "could not write" in error[0] and "File too large" in error[0], error
    assert "--output-dir" in error[0] and "Traceback" not in error[0]
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["already_done"], summary["ok"], summary["failed"]) == (4, 2, 0, 0)
    assert summary["stopped"] and "File too large" in summary["stopped"] and not summary["interrupted"]
    # Stopped at the first new item: the later one was never made (a run that went on would list it as failed).
    assert [(r["text"], r["status"]) for r in _manifest(out)] == [(t, "ok") for t in lines[:2]]
    assert sorted(out.glob("*.wav")) == made and not list(out.glob(".*.part"))


@pytest.mark.parametrize(
    ("code", "stops"),
    [
        (errno.ENOSPC, True),
        (errno.EDQUOT, True),
        (errno.EROFS, True),
        (errno.EACCES, True),
        (errno.EFBIG, True),
        (errno.EIO, False),
        (errno.ENAMETOOLONG, False),
    ],
)
def test_write_failures_that_recur_for_every_file_stop_a_run(code: int, stops: bool) -> None:
    error = write_error("could not write out/a.wav", OSError(code, os.strerror(code)))
    assert isinstance(error, UnwritableError) == stops and isinstance(error, OutputError)
    assert str(error) == f"could not write out/a.wav: {os.strerror(code)}"


def test_items_are_handed_to_the_worker_a_window_at_a_time_and_come_back_in_order(tmp_path: Path) -> None:
    """As many items as the worker steps together are queued before the first is awaited (so a batching engine
    makes them side by side), never more; the results still come in input order."""
    events: list[str] = []

    class Recorded(FunctionJob):
        def __init__(self, text: str, audio: np.ndarray) -> None:
            super().__init__([audio])
            self.text = text

        def __iter__(self) -> Any:
            events.append(f"await {self.text}")
            return super().__iter__()

    class Batching(FunctionService):
        def __init__(self) -> None:
            super().__init__(lambda text: np.full(50 + len(text), 0.1, np.float32))
            self.worker = SimpleNamespace(max_batch=3, loaded=True)

        def speak(self, text: str, voice: object, options: object, **kwargs: object) -> Recorded:
            events.append(f"queue {text}")
            return Recorded(text, self.audio(text))

    texts = [f"Item {i}." for i in range(7)]
    items = [Item(i, f"b:{i}", t) for i, t in enumerate(texts, 1)]
    results, _ = run_batch(Batching(), items, tmp_path)
    assert [r.text for r in results] == texts
    assert events[:4] == ["queue Item 0.", "queue Item 1.", "queue Item 2.", "await Item 0."]
    in_flight = peak = 0
    for event in events:
        in_flight += 1 if event.startswith("queue") else -1
        peak = max(peak, in_flight)
    assert peak == 3


def test_json_stdout_is_the_summary_alone_whatever_a_library_prints_during_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakcli.cli import main
    from speakcli.cli.progress import BatchProgress

    advance = BatchProgress.advance

    def advance_with_noise(self: BatchProgress, result: Any) -> None:
        # What Ray's driver prints to stdout, from its own thread, when a worker task is retried.
        print("(raylet) Task MapWorker(MapBatches(ItemMaker)).submit failed. There are 1 retries remaining")
        advance(self, result)

    monkeypatch.setattr(BatchProgress, "advance", advance_with_noise)
    src = tmp_path / "lines.txt"
    src.write_text("One line.\nAnother line.\n")
    assert main(["batch", str(src), "-o", str(tmp_path / "out"), "--engine", "piper", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["ok"] == 2
    assert captured.err.count("(raylet)") == 2
