"""The CLI as a user meets it: help without heavy imports, stdin, stdout WAV, one-line errors, exit codes."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import soundfile as sf

from helpers import portaudio_available, read_pty, run_cli, screen_text, spawn_on_pty
from speakcli.cli import main
from speakcli.errors import ExitStatus

AUDIO_DEVICE_MESSAGE = "device" if portaudio_available() else "PortAudio library is missing"

IMPORT_PROBE = """
import sys
from speakcli.cli import main
rc = main(sys.argv[1:])
heavy = sorted(
    m
    for m in ("torch", "TTS", "torchaudio", "transformers", "piper", "onnxruntime", "fastapi", "uvicorn", "ray", "wyoming")
    if m in sys.modules
)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
raise SystemExit(rc)
"""


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["--help"], 0),
        (["say", "--help"], 0),
        (["info", "--help"], 0),
        (["batch", "--help"], 0),
        (["serve", "--help"], 0),
        (["serve", "--port", "http"], 2),
        (["--version"], 0),
        (["say", "--bogus"], 2),
        (["say", "hi", "--speed", "fast"], 2),
        (["say", "a", "b"], 2),
        (["nosuchcommand"], 2),
        (["batch", "x.txt", "--executor", "dask"], 2),
        (["batch", "x.txt", "--executor", "ray", "--workers", "0"], 2),
    ],
)
def test_help_and_argument_errors_do_not_import_torch_or_tts(args: list[str], code: int) -> None:
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *args], capture_output=True, timeout=60)
    assert result.returncode == code, result.stderr
    assert b"HEAVY=\n" in result.stderr or result.stderr.endswith(b"HEAVY=\n"), result.stderr[-300:]
    if code == 2:
        lines = [ln for ln in result.stderr.decode().splitlines() if not ln.startswith("HEAVY=")]
        assert len(lines) == 1 and lines[0].startswith("speakcli: usage error:")


def test_a_ray_batch_with_a_bad_input_fails_before_importing_ray(tmp_path: Path) -> None:
    args = ["batch", str(tmp_path / "missing.txt"), "--executor", "ray"]
    result = subprocess.run([sys.executable, "-c", IMPORT_PROBE, *args], capture_output=True, timeout=60)
    assert result.returncode == ExitStatus.USAGE and b"missing.txt" in result.stderr, result.stderr
    assert result.stderr.endswith(b"HEAVY=\n"), result.stderr[-300:]


def test_no_arguments_prints_help_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitStatus.USAGE
    assert "Usage:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["say", "   "], ExitStatus.USAGE, "TEXT has no text to speak"),
        (["say", "hi", "-o", "x.wma"], ExitStatus.OUTPUT, "cannot tell the audio format"),
        (["say", "hi", "-o", "missing/x.wav"], ExitStatus.OUTPUT, "folder missing does not exist"),
        (["say", "hi", "--no-play"], ExitStatus.USAGE, "--no-play without --out"),
        (["say", "hi", "--engine", "xtts", "-o", "x.wav"], ExitStatus.MODEL, "No XTTS model found"),
        (["say", "hi", "--model-dir", "nowhere", "-o", "x.wav"], ExitStatus.MODEL, "nowhere does not exist"),
        (["say", "hi", "--engine", "piper", "-l", "de", "-o", "x.wav"], ExitStatus.USAGE, "use one of: en"),
        (["say", "hi", "--engine", "piper", "--voice", "zed", "-o", "x.wav"], ExitStatus.VOICE, "has one voice"),
        (["say", "hi", "--voice", "no/such.wav", "-o", "x.wav"], ExitStatus.VOICE, "does not exist"),
        (["say", "hi", "-o", "x.wav"], ExitStatus.USAGE, "SPEAKCLI_ENGINE: engine = 'espeak' is unknown"),
        (["say", "... !!! ???", "--engine", "piper", "-o", "x.wav"], ExitStatus.USAGE, "nothing to say"),
        (["say", "hi", "--device", "cpu\n", "-o", "x.wav"], ExitStatus.USAGE, "is not valid"),
        # Without PortAudio (a fresh machine) the same mistake is reported as the missing library, same code.
        (["say", "hi", "--output-device", "no-such-device-xyz"], ExitStatus.AUDIO_DEVICE, AUDIO_DEVICE_MESSAGE),
    ],
)
def test_bad_input_is_one_line_with_its_exit_code(
    args: list[str], code: int, message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    if "SPEAKCLI_ENGINE" in message:
        monkeypatch.setenv("SPEAKCLI_ENGINE", "espeak")
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    errors = [ln for ln in err if ln.startswith("speakcli: error:")]
    assert len(errors) == 1 and message in errors[0], err
    assert not any("Traceback" in ln for ln in err)
    assert not Path("x.wav").exists()


LONG = "a" * 300  # past the 255 bytes a file name may have


@pytest.mark.parametrize(
    "args",
    [
        ["say", "hi", "-o", f"{LONG}.wav"],
        ["say", "hi", "-o", f"{LONG}/x.wav"],
        ["clone", "clip.wav", "--text", "hi", "-o", f"{LONG}.wav"],
        ["batch", "in.txt", "-d", LONG],
        ["batch", "in.txt", "--concat", f"{LONG}.wav"],
        ["batch", "in.txt", "--name-template", LONG + "{slug}"],
        ["watch", "in.txt", "--no-play", "-d", LONG],
    ],
    ids=["say", "say-folder", "clone", "batch-dir", "batch-concat", "batch-template", "watch-dir"],
)
def test_a_name_too_long_for_the_file_system_is_one_line_exit_6(
    args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    Path("in.txt").write_text("Hello.\n")
    assert main([*args, "--engine", "piper"]) == ExitStatus.OUTPUT
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("speakcli: error:"), err
    assert "File name too long" in err[0] or "a file name holds at most 255" in err[0], err


def test_a_batch_name_that_grows_too_long_from_its_text_is_refused_before_anything_is_made(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Path("in.txt").write_text("A line whose slug makes the name too long.\n")
    template = "b" * 230 + "{slug}"  # 230 + a 40-character slug + .wav: only the real text makes it too long
    assert main(["batch", "in.txt", "-d", "out", "--engine", "piper", "--name-template", template]) == 6
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "speakcli: error: the name template makes a file name of 274 bytes, and a file name holds at most 255; "
        "fix --name-template: use {slug}, {hash}, {index}, {source}"
    ]
    assert not Path("out").exists()


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "say", "hi", "--engine", "xtts", "-o", "x.wav"]) == ExitStatus.MODEL
    assert "Traceback" in capsys.readouterr().err


def test_config_file_sets_defaults(isolated_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = isolated_env / ".config/speakcli/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('engine = "xtts"\n')
    assert main(["say", "hi", "-o", "x.wav"]) == ExitStatus.MODEL  # the config asked for xtts, which is absent
    assert main(["say", "hi", "--engine", "piper", "-q", "-o", "x.wav"]) == 0  # the flag wins


@pytest.mark.slow
def test_text_from_stdin_and_wav_to_stdout() -> None:
    result = run_cli("say", "-", "--engine", "piper", "-o", "-", input=b"Read from standard input.\n")
    assert result.returncode == 0, result.stderr
    assert result.stdout[:4] == b"RIFF"
    data, rate = sf.read(io.BytesIO(result.stdout))
    assert rate == 22050 and len(data) / rate > 0.8


@pytest.mark.slow
def test_piped_stdin_without_dash(tmp_path: Path) -> None:
    out = tmp_path / "piped.wav"
    result = run_cli("say", "--engine", "piper", "-o", str(out), input=b"Piped text.")
    assert result.returncode == 0, result.stderr
    assert out.exists()


@pytest.mark.slow
def test_existing_output_is_kept_without_force_and_replaced_with_it(tmp_path: Path) -> None:
    out = tmp_path / "keep.wav"
    out.write_bytes(b"my work")
    refused = run_cli("say", "Hello.", "--engine", "piper", "-o", str(out))
    assert refused.returncode == ExitStatus.OUTPUT and out.read_bytes() == b"my work"
    forced = run_cli("say", "Hello.", "--engine", "piper", "-o", str(out), "--force")
    assert forced.returncode == 0 and sf.info(out).frames > 0


def _long_say_under_way(
    out: Path, preexec_fn: Callable[[], object] | None = None
) -> tuple[subprocess.Popen[bytes], int]:
    """`say -` on a 400-sentence text to `out` with stderr on a terminal, returned once its progress shows
    sentences made; returns the process and the terminal to read."""
    text = " ".join(f"This is sentence number {i} of a long text." for i in range(400))
    proc, term = spawn_on_pty(
        [sys.executable, "-m", "speakcli", "say", "-", "-o", str(out)], stdin=subprocess.PIPE, preexec_fn=preexec_fn
    )
    assert proc.stdin
    proc.stdin.write(text.encode())
    proc.stdin.close()
    read_pty(term, until=b"/400")  # the model is loaded and sentences are being made
    return proc, term


@pytest.mark.slow
def test_kill_during_synthesis_leaves_no_output_file(tmp_path: Path) -> None:
    out = tmp_path / "long.wav"
    proc, term = _long_say_under_way(out)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    os.close(term)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".long.wav")] == []


@pytest.mark.slow
def test_info_json_without_xtts_model_says_why() -> None:
    result = run_cli("info", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"]["name"] == "piper"
    assert "no XTTS model found" in report["engine"]["note"]
    assert report["xtts_model"]["path"] is None
    assert isinstance(report["audio_outputs"], list)


def test_help_names_the_env_vars(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["say", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("SPEAKCLI_ENGINE", "SPEAKCLI_XTTS_DIR", "SPEAKCLI_SPEED", "SPEAKCLI_VOICE", "SPEAKCLI_LANGUAGE"):
        assert f"[env: {name}" in out


def _sigint_default() -> None:
    # A child inherits an ignored SIGINT from a shell's background job; a user's Ctrl-C reaches a default one.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
def test_ctrl_c_during_say_says_interrupted_and_leaves_no_file(tmp_path: Path) -> None:
    proc, term = _long_say_under_way(tmp_path / "long.wav", preexec_fn=_sigint_default)
    proc.send_signal(signal.SIGINT)
    rest = screen_text(read_pty(term))
    os.close(term)
    assert proc.wait(timeout=30) == ExitStatus.INTERRUPTED
    assert [ln for ln in rest.splitlines() if ln.startswith("speakcli")] == ["speakcli: interrupted"]
    assert "Traceback" not in rest
    assert [p.name for p in tmp_path.iterdir() if p.name != "home"] == []


@pytest.mark.slow
def test_stdout_that_cannot_be_written_is_an_output_error() -> None:
    with open("/dev/full", "wb") as full:
        result = subprocess.run(
            [sys.executable, "-m", "speakcli", "say", "Hello.", "--engine", "piper", "-o", "-"],
            stdout=full,
            stderr=subprocess.PIPE,
            timeout=120,
        )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == ExitStatus.OUTPUT, lines
    assert lines == ["speakcli: error: could not write audio to stdout: No space left on device"]


@pytest.mark.slow
def test_control_characters_in_the_text_are_not_spoken_and_do_not_crash() -> None:
    result = run_cli("say", "-", "--engine", "piper", "-o", "-", input=b"Hello\x00 there.\x1b[31m Fine.\x07")
    assert result.returncode == 0, result.stderr
    data, rate = sf.read(io.BytesIO(result.stdout))
    assert len(data) / rate > 0.8


def _limit_file_size() -> None:
    import resource

    # A real write failure part way through: the kernel refuses bytes past 4 KiB (EFBIG instead of SIGXFSZ).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))


@pytest.mark.slow
def test_a_write_that_fails_part_way_keeps_the_old_file_and_leaves_no_partial_one(tmp_path: Path) -> None:
    out = tmp_path / "keep.wav"
    out.write_bytes(b"my earlier work")
    result = run_cli(
        "say",
        "A sentence long enough to pass four kilobytes.",
        "--engine",
        "piper",
        "-o",
        str(out),
        "--force",
        "-q",
        preexec_fn=_limit_file_size,
        timeout=120,
    )
    assert result.returncode == ExitStatus.OUTPUT, result.stderr
    assert b"File too large" in result.stderr
    assert out.read_bytes() == b"my earlier work"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "home") == ["keep.wav"]


@pytest.mark.slow
@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_output_files_get_the_mode_the_umask_gives(tmp_path: Path, umask: int, mode: int) -> None:
    out = tmp_path / "hello.wav"
    result = run_cli(
        "say", "Hello.", "--engine", "piper", "-o", str(out), "-q", preexec_fn=lambda: os.umask(umask), timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == mode
