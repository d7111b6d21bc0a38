"""batch --executor ray on one local Ray: the local run's files and manifest, two workers, a killed worker, a bad item."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from helpers import run_cli
from speakcli import engines
from speakcli.cli import main
from speakcli.engines import EngineSpec
from speakcli.engines.piper import PiperEngine
from speakcli.errors import ExitStatus, ModelError

ray = pytest.importorskip("ray")

pytestmark = pytest.mark.slow

HOLD_ENV = "TEST_BATCH_RAY_HOLD"  # a folder; while it holds a file `hold`, the workers' engine waits
WORKER_CLASS = "MapWorker(MapBatches(ItemMaker))"  # how Ray Data names the pool's actors


class _ExactPiper(PiperEngine):
    """The bundled voice with its noise off (the same text gives the same bytes in any process). In a Ray worker it
    can be held before speaking, so a test can kill a worker while it has an item in hand, and a text starting
    with "Crash" kills the worker."""

    def __init__(self) -> None:
        super().__init__(noise_scale=0.0, noise_w_scale=0.0)

    def synthesize(self, text: str, voice: Any, options: Any) -> Iterator[Any]:
        if text.startswith("Crash") and os.environ.get(HOLD_ENV):  # only in a Ray worker: it dies with the item
            os.kill(os.getpid(), signal.SIGKILL)
        folder = os.environ.get(HOLD_ENV)
        if folder and (Path(folder) / "hold").exists():
            (Path(folder) / f"waiting-{os.getpid()}").touch()
            deadline = time.monotonic() + 60
            while (Path(folder) / "hold").exists() and time.monotonic() < deadline:
                time.sleep(0.01)  # another process lifts the hold: poll the file, with a deadline
        yield from super().synthesize(text, voice, options)


def _exact_piper(spec: EngineSpec) -> PiperEngine:
    folder = os.environ.get(HOLD_ENV)
    if folder and (Path(folder) / "broken").exists():  # in a Ray worker: as if its node lacked the model
        raise ModelError("no Piper voice on this node")
    return _ExactPiper()


def _use_exact_piper() -> None:
    """Runs in each Ray worker process before it builds its service."""
    engines.register("piper", _exact_piper)


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One small local Ray for the module, its workers speaking with the exact Piper voice; yields the hold folder."""
    hold = tmp_path_factory.mktemp("hold")
    module = sys.modules[__name__]
    # This module is not importable in the workers: ship its hook and engine by value.
    ray.cloudpickle.register_pickle_by_value(module)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=200 * 1024**2,
        log_to_driver=False,
        runtime_env={"worker_process_setup_hook": _use_exact_piper, "env_vars": {HOLD_ENV: str(hold)}},
    )
    try:
        yield hold
    finally:
        ray.shutdown()
        ray.cloudpickle.unregister_pickle_by_value(module)


@pytest.fixture
def exact_piper(monkeypatch: pytest.MonkeyPatch, ray_session: Path) -> Path:
    """This process speaks with the exact voice too, so a local run is comparable byte for byte."""
    monkeypatch.setitem(engines._REGISTRY, "piper", _exact_piper)
    return ray_session


def _worker_actors() -> list[dict[str, Any]]:
    """The pool's actors as Ray's control store lists them (the state API needs the dashboard, which is off)."""
    from ray._private.state import actors

    return [a for a in actors().values() if a["ActorClassName"] == WORKER_CLASS]


def _manifest(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def _batch(*args: str, capsys: pytest.CaptureFixture[str] | None = None) -> tuple[int, dict[str, Any]]:
    rc = main(["batch", *args, "--engine", "piper", "--json"])
    summary = json.loads(capsys.readouterr().out) if capsys else {}
    return rc, summary


def test_ray_makes_the_files_and_manifest_a_local_run_makes(
    tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "The first line, said plainly."}\n'
        '{"text": "A second line, a little faster.", "speed": 1.5}\n'
        '{"text": "... !!!"}\n'
        '{"text": "The first line, said plainly."}\n'
        '{"text": "Named by its row.", "out": "named"}\n'
        '{"text": "The last line of the test."}\n'
    )
    before = {a["ActorID"] for a in _worker_actors()}
    assert _batch(str(rows), "-d", str(tmp_path / "local"), capsys=capsys)[0] == 0
    rc, summary = _batch(str(rows), "-d", str(tmp_path / "ray"), "--executor", "ray", "--workers", "2", capsys=capsys)
    assert rc == 0 and (summary["ok"], summary["skipped"]) == (5, 1)

    names = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "ray").iterdir())
    assert "the-first-line-said-plainly-06144750-2.wav" in names and "named.wav" in names
    for name in names:
        if name != "manifest.jsonl":
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    timing = {"synthesis_seconds"}
    strip = lambda recs: [{k: v for k, v in r.items() if k not in timing} for r in recs]  # noqa: E731
    assert strip(_manifest(tmp_path / "ray")) == strip(_manifest(tmp_path / "local"))

    # Two actors made the items, each with its own service.
    assert len({a["ActorID"] for a in _worker_actors()} - before) == 2

    # A rerun on Ray keeps every item (resume), and starts no actor: nothing needs making.
    before = {a["ActorID"] for a in _worker_actors()}
    rc, summary = _batch(str(rows), "-d", str(tmp_path / "ray"), "--executor", "ray", capsys=capsys)
    assert rc == 0 and (summary["ok"], summary["already_done"], summary["skipped"]) == (0, 5, 1)
    assert {a["ActorID"] for a in _worker_actors()} == before


def test_a_book_on_ray_has_the_files_manifest_and_chapters_of_a_local_run(
    tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from book_helpers import make_epub

    epub = str(make_epub(tmp_path / "book.epub"))
    assert _batch(epub, "-d", str(tmp_path / "local"), "--concat", str(tmp_path / "local.m4b"), capsys=capsys)[0] == 0
    rc, summary = _batch(
        epub, "-d", str(tmp_path / "ray"), "--concat", str(tmp_path / "ray.m4b"), "--executor", "ray", capsys=capsys
    )
    assert rc == 0 and [c["title"] for c in summary["chapters"]] == ["The Beginning", "The End & After"]
    strip = lambda recs: [{k: v for k, v in r.items() if k != "synthesis_seconds"} for r in recs]  # noqa: E731
    assert strip(_manifest(tmp_path / "ray")) == strip(_manifest(tmp_path / "local"))
    assert {r["chapter"] for r in _manifest(tmp_path / "ray")} == {1, 2}

    import av

    def marks(path: Path) -> list[dict[str, Any]]:
        with av.open(str(path)) as container:
            return container.chapters()

    assert marks(tmp_path / "ray.m4b") == marks(tmp_path / "local.m4b") and len(marks(tmp_path / "ray.m4b")) == 2


def test_a_bad_item_fails_alone(tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        '{"text": "Made before the bad ones."}\n'
        '{"text": "A voice Piper does not have.", "voice": "nosuch"}\n'
        "{not json\n"
        '{"text": "Crash the worker that makes this, every time."}\n'
        '{"text": "Made after the bad ones."}\n'
    )
    rc, summary = _batch(str(rows), "-d", str(tmp_path / "out"), "--executor", "ray", "--workers", "2", capsys=capsys)
    assert rc == ExitStatus.PARTIAL
    assert (summary["ok"], summary["failed"]) == (2, 3)
    records = _manifest(tmp_path / "out")
    assert [r["status"] for r in records] == ["ok", "failed", "failed", "failed", "ok"]
    assert "nosuch" in records[1]["error"] and "JSON" in records[2]["error"] and "died" in records[3]["error"]
    assert all((tmp_path / "out" / r["output"]).stat().st_size == r["bytes"] for r in records if r["status"] == "ok")


def test_a_worker_killed_mid_run_is_restarted_and_the_run_completes(
    tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"Line {i} of a run that loses a worker.\n" for i in range(6)))
    hold = exact_piper / "hold"
    hold.touch()
    killed: list[int] = []
    errors: list[BaseException] = []

    def kill_one_worker_in_hand() -> None:
        try:
            # Both workers hold an item: they have built their services and are speaking.
            deadline = time.monotonic() + 60
            while len(list(exact_piper.glob("waiting-*"))) < 2:
                assert time.monotonic() < deadline, "the workers never took an item"
                time.sleep(0.05)
            waiting = {int(p.name.split("-")[1]) for p in exact_piper.glob("waiting-*")}
            alive = {a["Pid"] for a in _worker_actors() if a["State"] == "ALIVE"}
            assert waiting <= alive  # the engine's processes are the pool's actors, as Ray knows them
            killed.append(min(waiting))
            os.kill(killed[0], signal.SIGKILL)
        except BaseException as exc:
            errors.append(exc)
        finally:
            hold.unlink()

    killer = threading.Thread(target=kill_one_worker_in_hand, name="test-killer")
    killer.start()
    try:
        rc, summary = _batch(
            str(lines), "-d", str(tmp_path / "out"), "--executor", "ray", "--workers", "2", capsys=capsys
        )
    finally:
        killer.join(timeout=90)
    assert not errors, errors
    assert rc == 0 and summary["ok"] == 6, summary
    records = _manifest(tmp_path / "out")
    assert [r["status"] for r in records] == ["ok"] * 6
    assert all((tmp_path / "out" / r["output"]).stat().st_size == r["bytes"] for r in records)
    restarted = [a for a in _worker_actors() if a["NumRestarts"] >= 1]
    assert restarted, "the killed worker was not restarted"
    assert killed and all(a["Pid"] != killed[0] for a in _worker_actors() if a["State"] == "ALIVE")


def test_a_worker_that_cannot_build_its_engine_stops_the_run_with_its_error(
    tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Never spoken.\n")
    (exact_piper / "broken").touch()
    try:
        rc = main(["batch", str(lines), "-d", str(tmp_path / "out"), "--executor", "ray", "--engine", "piper"])
    finally:
        (exact_piper / "broken").unlink()
    assert rc == ExitStatus.MODEL
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "speakcli: error: no Piper voice on this node", err


def test_the_cli_starts_a_local_ray_of_its_own_and_keeps_ray_quiet(tmp_path: Path) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("A run with a Ray of its own.\nAnd a second line.\n")
    # A subprocess: this process's Ray would be reused; the user's command starts (and stops) its own.
    result = run_cli(
        "batch", str(lines), "-d", str(tmp_path / "out"), "--engine", "piper", "--executor", "ray", "--json"
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert json.loads(result.stdout)["ok"] == 2
    assert result.stderr == b"", result.stderr.decode()[-2000:]  # no line from Ray: its start, its actors, its end


def test_without_ray_the_ray_executor_is_a_one_line_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Never spoken.\n")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as it does without the extra
    assert main(["batch", str(lines), "-d", str(tmp_path / "out"), "--executor", "ray"]) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'speakcli[ray]'" in err[0], err
    assert not (tmp_path / "out").exists()


def test_an_address_where_no_head_answers_is_a_usage_error_before_anything_is_made(
    tmp_path: Path, ray_session: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Never spoken.\n")
    args = ["batch", str(lines), "-d", str(tmp_path / "out"), "--executor", "ray", "--ray-address", "127.0.0.1:1"]
    assert main(args) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Ray cluster at 127.0.0.1:1" in err[0], err
    assert not (tmp_path / "out").exists()


def test_ray_flags_without_the_ray_executor_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = tmp_path / "lines.txt"
    lines.write_text("Never spoken.\n")
    assert main(["batch", str(lines), "-d", str(tmp_path / "out"), "--workers", "2"]) == ExitStatus.USAGE
    assert "--executor ray" in capsys.readouterr().err


def _wait_for(found: Callable[[], bool], what: str, timeout: float = 240) -> None:
    """Poll the file system (another process writes it) until `found()`, with a deadline."""
    deadline = time.monotonic() + timeout
    while not found():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_sigterm_ends_a_ray_run_as_ctrl_c_does_with_its_summary_and_final_manifest(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # An earlier run's file whose line is gone from the input: only the final manifest lists it as removed.
    (out / "old.wav").write_bytes(b"old")
    old = {"index": 1, "source": "old.txt:1", "text": "Old.", "voice": None, "language": None, "output": "old.wav"}
    old.update({"audio_seconds": 1.0, "synthesis_seconds": 1.0, "status": "ok", "key": "k", "bytes": 3})
    (out / "manifest.jsonl").write_text(json.dumps(old) + "\n")
    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"Line {i} of a run that a service manager stops.\n" for i in range(30)))
    # A subprocess with a Ray of its own, as a user's command: its ray.init sets the SIGTERM handlers at stake.
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "speakcli",
            "batch",
            str(lines),
            "-d",
            str(out),
            "--engine",
            "piper",
            "--executor",
            "ray",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: len(_manifest(out)) >= 2, "no item was made")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == ExitStatus.TERMINATED == 143, err.decode()[-2000:]
    said = err.decode().splitlines()
    assert said[0] == "speakcli: terminated; stopping after the current item (SIGTERM again to quit now)", said
    assert len(said) == 2 and re.fullmatch(
        r"speakcli: (\d+) made, 0 already done, 0 failed of 30, 1 kept file\(s\) of items no longer in the input; .* \(interrupted\)",
        said[1],
    )
    made = int(said[1].split()[1])
    records = _manifest(out)  # rewritten at the end: in order, the old file listed as removed
    assert [r["status"] for r in records] == ["ok"] * made + ["removed"]
    assert [r["index"] for r in records] == [*range(1, made + 1), None]
    assert all((out / r["output"]).stat().st_size == r["bytes"] for r in records)


def test_a_second_ctrl_c_while_ray_stops_the_pool_ends_the_run_without_a_traceback(
    tmp_path: Path, exact_piper: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from ray.data._internal.execution.streaming_executor import StreamingExecutor

    lines = tmp_path / "lines.txt"
    lines.write_text("".join(f"Line {i} of a run stopped twice.\n" for i in range(4)))
    for p in exact_piper.glob("waiting-*"):
        p.unlink()  # an earlier test's worker waited: only this run's count
    hold = exact_piper / "hold"
    hold.touch()
    stopping = threading.Event()
    shutdown = StreamingExecutor.shutdown

    def shutdown_interrupted(self: Any, *args: Any, **kwargs: Any) -> Any:
        if stopping.is_set():  # the second Ctrl-C comes while Ray stops the pool (it joins a thread for up to 2 s)
            stopping.clear()
            signal.raise_signal(signal.SIGINT)
        return shutdown(self, *args, **kwargs)

    monkeypatch.setattr(StreamingExecutor, "shutdown", shutdown_interrupted)
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)  # where an exception raised in a finaliser goes

    def first_ctrl_c_with_an_item_in_hand() -> None:
        try:
            _wait_for(lambda: any(exact_piper.glob("waiting-*")), "the worker never took an item", 90)
            stopping.set()
            os.kill(os.getpid(), signal.SIGINT)
        finally:
            hold.unlink()

    first = threading.Thread(target=first_ctrl_c_with_an_item_in_hand, name="test-ctrl-c")
    first.start()
    try:
        rc, summary = _batch(str(lines), "-d", str(tmp_path / "out"), "--executor", "ray", capsys=capsys)
    finally:
        first.join(timeout=120)
    assert not stopping.is_set(), "the pool was never stopped after the first Ctrl-C"
    assert unraisable == [], [u.exc_value for u in unraisable]
    assert rc == ExitStatus.INTERRUPTED and summary["interrupted"], summary
    assert "Traceback" not in capsys.readouterr().err
    assert [r["status"] for r in _manifest(tmp_path / "out")] == ["ok"] * summary["ok"]
