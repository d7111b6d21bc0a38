"""The project's promises about itself: CI runs the README's test command, and the README's set-up is real."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _shell_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, flags=re.S)


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("## ", 1)[0]
    blocks = _shell_blocks(setup)
    main_cmd, test_cmd = blocks[0].strip(), blocks[1].strip()
    assert "speakcli say" in main_cmd and main_cmd.startswith("pip install .")
    assert "pytest" in test_cmd
    ci = (ROOT / ".ci/run").read_text().splitlines()
    assert test_cmd in ci


def test_the_bundled_default_voice_is_shipped_with_its_licence() -> None:
    import tomllib

    meta = tomllib.loads((ROOT / "voices/joe/voice.toml").read_text())
    assert meta["language"] == "en" and "MIT" in meta["license"]
    assert (ROOT / "voices/joe/reference.wav").stat().st_size > 100_000


def test_every_exit_status_is_documented() -> None:
    from speakcli.errors import ExitStatus

    readme = (ROOT / "README.md").read_text()
    for status in ExitStatus:
        assert re.search(rf"^\| {int(status)} \|", readme, flags=re.M), status


def test_the_testing_helpers_import_no_model_or_audio_library() -> None:
    import subprocess
    import sys

    # A fresh interpreter: this one has imported whatever earlier tests needed.
    probe = (
        "import sys, speakcli.testing, speakcli.testing.tiny_xtts; "
        "print(sorted({'torch', 'TTS', 'sounddevice'} & sys.modules.keys()))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip() == "[]"
