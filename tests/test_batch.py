"""batch: every input kind, safe names, row-level failures, resume after kill -9, Ctrl-C, concat."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import run_cli
from speakcli.batch import Item, plan_outputs, read_items, safe_name
from speakcli.errors import ExitStatus, UsageError


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


def test_jsonl_and_csv_rows_fail_alone(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "ok", "voice": "joe", "speed": 1.5}\n[1]\n{"text": ""}\n{"text": "x", "pitch": 2}\n{bad\n'
    )
    items = read_items([str(rows)])
    assert items[0].text == "ok" and items[0].voice == "joe" and items[0].speed == 1.5 and items[0].error is None
    assert [i.error for i in items[1:]] == [
        "not a JSON object",
        "no text",
        "unknown field(s) pitch; use text, voice, language, out, speed",
        "invalid JSON (Expecting property name enclosed in double quotes)",
    ]
    table = tmp_path / "t.csv"
    table.write_text('text,language,out\n"Hello, there",en,hello\n,en,empty\n')
    items = read_items([str(table)])
    assert (items[0].text, items[0].language, items[0].out) == ("Hello, there", "en", "hello")
    assert items[1].error == "no text"
    bad = tmp_path / "bad.csv"
    bad.write_text("text,emotion\nhi,happy\n")
    with pytest.raises(UsageError, match=r"unknown column.*emotion"):
        read_items([str(bad)])


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


# --- the CLI with the Piper voice ------------------------------------------------------------------


@pytest.mark.slow
def test_stdin_batch_with_progress_summary_and_concat(tmp_path: Path) -> None:
    out = tmp_path / "out"
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
        input=b"One.\nTwo two.\n\nThree three three.\n",
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["total"], summary["ok"], summary["failed"]) == (3, 3, 0)
    files = sorted(p.name for p in out.glob("*.wav"))
    assert files == ["0001-one.wav", "0002-two-two.wav", "0003-three-three-three.wav"]
    lengths = [sf.info(out / f).frames for f in files]
    rate = sf.info(out / files[0]).samplerate
    assert sf.info(tmp_path / "all.wav").frames == sum(lengths) + 2 * int(0.5 * rate)
    records = _manifest(out)
    assert [r["source"] for r in records] == ["stdin:1", "stdin:2", "stdin:4"]
    assert all(r["status"] == "ok" and r["audio_seconds"] > 0 and r["synthesis_seconds"] > 0 for r in records)


@pytest.mark.slow
def test_bad_rows_and_traversal_attempts(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "Escape one.", "out": "../../escaped.wav"}\n'
        '{"text": "Escape two.", "out": "/tmp/abs-escape"}\n'
        '{"text": "Wrong language.", "language": "de"}\n'
        '{"text": "Bad speed.", "speed": 9}\n'
        '{"text": "Fine.", "out": "fine.flac"}\n'
    )
    out = tmp_path / "out"
    result = run_cli("batch", str(rows), "-o", str(out), "--engine", "piper", "--format-out", "flac")
    assert result.returncode == ExitStatus.PARTIAL
    assert sorted(p.name for p in out.iterdir()) == ["abs-escape.flac", "escaped.flac", "fine.flac", "manifest.jsonl"]
    assert not (tmp_path / "escaped.wav").exists() and not Path("/tmp/abs-escape").exists()
    failed = {r["index"]: r["error"] for r in _manifest(out) if r["status"] == "failed"}
    assert "not supported by the piper engine" in failed[3] and "out of range" in failed[4]
    assert b"failed: item 3" in result.stderr


@pytest.mark.slow
def test_resume_after_kill_9_leaves_only_whole_files_and_finishes(tmp_path: Path) -> None:
    src = tmp_path / "lines.txt"
    src.write_text("".join(f"This is line number {i}, spoken in a batch.\n" for i in range(40)))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "speakcli", "batch", str(src), "-o", str(out), "--engine", "piper", "-q"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not ((out / "manifest.jsonl").exists() and len((out / "manifest.jsonl").read_text().splitlines()) >= 5):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.02)  # watching another process's file: there is no event to wait on
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stderr.close()  # type: ignore[union-attr]
    done_before = {p.name for p in out.glob("*.wav")}
    assert 5 <= len(done_before) < 40
    for p in done_before:
        data, _ = sf.read(out / p)  # every visible file is whole
        assert len(data) > 1000
    again = run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--json")
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    assert summary["skipped"] >= len(done_before) - 1 and summary["ok"] + summary["skipped"] == 40
    assert len(list(out.glob("*.wav"))) == 40 and not list(out.glob(".*.part"))
    records = _manifest(out)
    assert [r["index"] for r in records] == list(range(1, 41))
    forced = json.loads(run_cli("batch", str(src), "-o", str(out), "--engine", "piper", "--json", "--force").stdout)
    assert forced["ok"] == 40 and forced["skipped"] == 0


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
    assert (summary["skipped"], summary["ok"]) == (1, 1)
    assert next(r for r in _manifest(out) if r["output"] == "2.wav")["text"] == "Gamma."


@pytest.mark.slow
def test_ctrl_c_stops_after_the_current_item(tmp_path: Path) -> None:
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
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitStatus.INTERRUPTED
    assert b"stopping after the current item" in err and b"(interrupted)" in err
    records = _manifest(out)
    assert 1 <= len(records) < 200 and all(r["status"] == "ok" for r in records)
    assert len(list(out.glob("*.wav"))) == len(records)


def test_usage_errors(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    for args, code, message in [
        (["batch", "missing.txt", "-o", "o"], ExitStatus.USAGE, b"missing.txt does not exist"),
        (["batch", "-", "-o", str(tmp_path / "f")], ExitStatus.OUTPUT, b"is a file"),
        (["batch", "-", "-o", "o", "--split", "word"], ExitStatus.USAGE, b"--split"),
        (["batch", "-", "-o", "o", "--name-template", "{nope}"], ExitStatus.USAGE, b"--name-template"),
    ]:
        result = run_cli(*args, "--engine", "piper", input=b"hello\n")
        assert result.returncode == code and message in result.stderr, (args, result.stderr)


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
