"""Every --help reads like a well-kept CLI's; --debug anywhere; one spelling per option; Tab completion."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
import typer

from speakcli.cli import app, main
from speakcli.errors import ExitStatus
from speakcli.settings import Settings
from speakcli.testing import voiced, write_clip

SETTING_ENV = {f.name: f.metadata["env"] for f in fields(Settings)}
# What Typer or click print when a parameter names no metavar: Python types, or click's type names (a regex's
# named group in an example, `(?P<text>...)`, is not one).
TYPE_NAMES = re.compile(
    r"(?<!\?P)<(str|int|float|bool|path|file|text|datetime|uuid|list\[[^>]*\]|[a-z]+ range)>|\b(INTEGER|FLOAT)( RANGE)?\b"
    r"|\blist\["
)


def _group() -> Any:
    return typer.main.get_command(app)


def _commands() -> list[str]:
    return sorted(_group().commands)


def _help(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main([*args, "--help"]) == 0
    return capsys.readouterr().out


@pytest.fixture(autouse=True)
def _fixed_width(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # help wraps to the terminal: make it the usual one


def test_the_walk_covers_every_command() -> None:
    assert {
        "say",
        "batch",
        "clone",
        "voices",
        "precompute",
        "watch",
        "languages",
        "devices",
        "info",
        "download",
    } <= set(_commands())


@pytest.mark.parametrize("command", _commands())
def test_help_shows_plain_metavars_and_no_type_names(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, command)
    usage = text.splitlines()[0]
    assert "{" not in usage and "<" not in usage, usage
    assert not TYPE_NAMES.search(text), TYPE_NAMES.search(text)
    cmd = _group().commands[command]
    ctx = cmd.make_context(command, [], resilient_parsing=True)
    for param in cmd.get_params(ctx):
        record = param.get_help_record(ctx)
        if record is None or getattr(param, "is_flag", False):
            continue
        shown = param.metavar or ""
        # A plain word in capitals (FILE, DIR, N, SECONDS...) or the choices ([auto|xtts|piper]).
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*|\[[a-z0-9-]+(\|[a-z0-9-]+)+\]", shown), (param.name, shown)
        assert shown in text, (param.name, shown)


def test_command_summaries_are_whole(capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys)
    listing = text.split("Commands:", 1)[1].split("\n\n", 1)[0]
    rows: dict[str, str] = {}
    name = ""
    for line in listing.splitlines():
        if line.startswith("  ") and not line.startswith("   "):
            name, _, rest = line.strip().partition(" ")
            rows[name] = rest.strip()
        elif name:
            rows[name] += " " + line.strip()
    group = _group()
    assert set(rows) == set(group.commands)
    for name, summary in rows.items():
        first_paragraph = " ".join((group.commands[name].help or "").split("\n\n")[0].split())
        assert summary == first_paragraph, name
        assert not summary.endswith("..."), name


@pytest.mark.parametrize("command", _commands())
def test_every_setting_option_names_its_env_var(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = " ".join(_help(capsys, command).split())
    cmd = _group().commands[command]
    for param in cmd.params:
        env = SETTING_ENV.get(param.name or "") or param.envvar
        if env and not param.hidden:
            assert f"[env: {env}" in text, (command, param.name)
    declared = {p.envvar for p in cmd.params if p.envvar}
    for env in re.findall(r"\[env: (\w+)", text):
        assert env in {*SETTING_ENV.values(), *declared}, env  # generated from the declaration, not typed by hand


@pytest.mark.parametrize("command", _commands())
def test_every_command_has_examples_as_written(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    text = _help(capsys, command)
    examples = text.split("\nExamples:\n", 1)[1].splitlines()
    assert len([ln for ln in examples if "speakcli" in ln]) >= 2
    module = sys.modules[_group().commands[command].callback.__module__]
    for line in module.EXAMPLES.strip().splitlines():
        assert f"  {line}" in examples  # one line each, not rewrapped as a paragraph


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        ("say", "--engine [auto|xtts|piper]"),
        ("watch", "--overflow [block|drop-oldest|drop-newest]"),
        ("watch", "--long-lines [split|truncate]"),
        ("batch", "--format-out [wav|flac|ogg|opus|mp3|aac|m4a|pcm|raw]"),
        ("watch", "--format-out [wav|flac|ogg|opus|mp3|aac|m4a|pcm|raw]"),
        ("say", "--format [wav|flac|ogg|opus|mp3|aac|m4a|pcm|raw]"),
        ("batch", "--split [line|paragraph|file]"),
    ],
)
def test_choices_are_listed_and_enforced(command: str, shown: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert shown in _help(capsys, command)
    option = shown.split()[0]
    args = [command, *(["x.txt"] if command in ("watch", "batch") else ["hi"]), option, "bogus"]
    assert main(args) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'bogus' is not one of" in err[0] and "Value error" not in err[0], err


@pytest.mark.parametrize("command", _commands())
def test_debug_is_accepted_after_every_command(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert "--debug" in _help(capsys, command)


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_after_the_command_equals_the_global_one(where: str, capsys: pytest.CaptureFixture[str]) -> None:
    say = ["say", "hi", "--engine", "xtts", "-o", "x.wav"]
    args = ["--debug", *say] if where == "before" else [*say, "--debug"]
    assert main(args) == ExitStatus.MODEL
    err = capsys.readouterr().err
    assert "Traceback" in err and "speakcli: error: No XTTS model found" in err
    assert main(say) == ExitStatus.MODEL  # and it does not stick to the next run in this process
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.parametrize("spelling", ["-d", "--output-dir", "-o", "--out-dir"])
def test_batch_output_folder_spellings(spelling: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in.txt").write_text("Hello.\n")
    (tmp_path / "a-file").write_text("")
    # A file where the folder should be is refused before any model loads: proof the option got the value.
    assert main(["batch", "in.txt", spelling, "a-file"]) == ExitStatus.OUTPUT
    assert "a-file is a file" in capsys.readouterr().err


def test_watch_takes_the_same_output_folder_spelling(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "a-file").write_text("")
    assert main(["watch", "chat.txt", "--no-play", "-d", "a-file"]) == ExitStatus.OUTPUT
    assert "a-file is a file" in capsys.readouterr().err


def test_old_spellings_are_hidden_and_the_file_option_is_o(capsys: pytest.CaptureFixture[str]) -> None:
    batch = _help(capsys, "batch")
    assert "-d, --output-dir DIR" in batch and "--out-dir" not in batch and "-o," not in batch
    assert "-d, --output-dir DIR" in _help(capsys, "watch")
    assert "-o, --out FILE" in _help(capsys, "say")
    assert "-o, --out FILE" in _help(capsys, "clone")


# -- languages, devices, info ------------------------------------------------------------------------------------


def test_languages_of_the_bundled_voice(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["languages", "--engine", "piper", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["engine"] == "piper" and found["languages"] == [{"code": "en", "name": "English"}]


PROBE = """
import sys
from speakcli.cli import main
try:
    rc = main(sys.argv[1:])
except SystemExit as exc:  # shell completion exits from inside the app
    rc = exc.code
heavy = sorted(m for m in ("torch", "TTS", "torchaudio", "transformers", "onnxruntime") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
raise SystemExit(rc)
"""


def _probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


@pytest.mark.xtts
@pytest.mark.slow
def test_languages_of_xtts_come_from_its_config_without_loading_weights(tmp_path: Path) -> None:
    model = tmp_path / "xtts"
    model.mkdir()
    config = {"languages": ["en", "de", "zh-cn"], "model_args": {"output_sample_rate": 24000}}
    (model / "config.json").write_text(json.dumps(config))
    (model / "model.pth").write_bytes(b"not a checkpoint: loading it would fail")
    (model / "vocab.json").write_text("{}")
    result = _probe("languages", "--engine", "xtts", "--model-dir", str(model), "--json")
    assert result.returncode == 0, result.stderr
    assert [(lang["code"], lang["name"]) for lang in json.loads(result.stdout)["languages"]] == [
        ("en", "English"),
        ("de", "German"),
        ("zh", "Chinese"),
    ]
    assert result.stderr.strip().endswith("HEAVY="), result.stderr


@pytest.mark.audio
def test_devices_lists_the_audio_outputs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["devices", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and sum(d["default"] for d in found) <= 1
    assert {"index", "name", "hostapi", "channels", "default"} <= set(found[0])
    assert main(["devices"]) == 0
    assert found[0]["name"] in capsys.readouterr().out


@pytest.mark.slow
def test_info_runs_with_a_broken_config_and_names_the_problem(isolated_env: Path) -> None:
    cfg = isolated_env / ".config/speakcli/config.toml"
    cfg.parent.mkdir(parents=True)
    cfg.write_text('engine = "piper"\nspeed = 9\n')
    result = _probe("info", "--json", env={"SPEAKCLI_PAUSE": "long"})
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    problems = report["config"]["problems"]
    assert any(str(cfg) in p and "speed = 9" in p for p in problems), problems
    assert any("SPEAKCLI_PAUSE" in p for p in problems), problems
    assert report["engine"]["name"] == "piper"  # the good key of the broken file still counts
    assert set(report["dirs"]) == {"config", "data", "cache", "state"}
    assert report["dirs"]["state"] == str(isolated_env / ".local/state/speakcli")
    table = _probe("info")
    assert table.returncode == 0 and "config problem" in table.stdout and "state dir" in table.stdout
    # The other commands refuse it, naming the file and the key.
    say = _probe("say", "hi", "-o", "x.wav")
    assert say.returncode == ExitStatus.USAGE
    assert f"config file {cfg}: speed = 9 is out of range" in say.stderr


def test_a_missing_speakcli_config_is_an_error_and_info_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.toml"
    monkeypatch.setenv("SPEAKCLI_CONFIG", str(missing))
    assert main(["say", "hi", "-o", "x.wav"]) == ExitStatus.USAGE
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"speakcli: error: config file {missing} (named by SPEAKCLI_CONFIG) does not exist; "
        "create it, or unset SPEAKCLI_CONFIG"
    ]
    assert main(["info", "--json"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["file"] == str(missing) and config["named_by_env"] and not config["exists"]
    assert len(config["problems"]) == 1 and "does not exist" in config["problems"][0]


# -- download ----------------------------------------------------------------------------------------------------


@pytest.mark.xtts
@pytest.mark.slow
def test_download_offline_gives_the_whole_reason_and_only_its_own_flags(tmp_path: Path) -> None:
    dest = tmp_path / "models" / "xtts"
    result = _probe("download", "--model-dir", str(dest), env={"HF_HUB_OFFLINE": "1", "COQUI_TOS_AGREED": "1"})
    assert result.returncode == ExitStatus.MODEL, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if not ln.startswith("HEAVY=")]
    assert len(lines) == 1 and lines[0].startswith("speakcli: error: could not download XTTS v2"), lines
    # huggingface_hub's whole message, to its end: it says which setting keeps it offline.
    assert "set 'HF_HUB_OFFLINE=0' as environment variable" in lines[0]
    download_flags = {"--model-dir", "--to", "--debug", "--help"}
    assert set(re.findall(r"--[a-z][a-z-]+", lines[0])) <= download_flags, lines[0]


def test_download_into_a_folder_that_holds_the_model_says_where(tmp_path: Path) -> None:
    from helpers import run_cli

    dest = tmp_path / "xtts"
    dest.mkdir()
    for name in ("config.json", "model.pth", "vocab.json"):
        (dest / name).write_text("{}")
    result = run_cli("download", "--to", str(dest))
    if b"needs coqui-tts" in result.stderr:
        pytest.skip("coqui-tts not installed")
    assert result.returncode == 0, result.stderr
    assert f"already downloaded: {dest}".encode() in result.stderr


# -- completion --------------------------------------------------------------------------------------------------


def _bash(script: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `script` in a real bash (so the shell is detected as bash, as for a user), in the test's home."""
    return subprocess.run(
        ["bash", "--norc", "-c", script],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "HOME": str(home)},
    )


def _speakcli() -> str:
    return f"{shlex.quote(sys.executable)} -m speakcli"


def test_install_and_show_completion(isolated_env: Path) -> None:
    shown = _bash(f"{_speakcli()} --show-completion", isolated_env)
    assert shown.returncode == 0, shown.stderr
    assert "_SPEAKCLI_COMPLETE=complete_bash" in shown.stdout and "complete -o default -F" in shown.stdout
    installed = _bash(f"{_speakcli()} --install-completion", isolated_env)
    assert installed.returncode == 0, installed.stderr
    script = isolated_env / ".bash_completions/speakcli.sh"
    assert script.read_text().strip() == shown.stdout.strip()
    assert f"source '{script}'" in (isolated_env / ".bashrc").read_text()


def _complete(home: Path, words: str) -> list[str]:
    """What bash offers for `words` (the last one being completed), through the script speakcli installs."""
    # The script runs the command named by its first argument: a `speakcli` on PATH that is this Python's.
    bin_dir = home / "bin"
    if not (bin_dir / "speakcli").exists():
        bin_dir.mkdir()
        (bin_dir / "speakcli").write_text(f'#!/bin/sh\nexec {_speakcli()} "$@"\n')
        (bin_dir / "speakcli").chmod(0o755)
        (home / "completion.sh").write_text(_bash(f"{_speakcli()} --show-completion", home).stdout)
    result = _bash(
        f"PATH={bin_dir}:$PATH; source {home}/completion.sh; "
        f"COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); "
        f'_speakcli_completion speakcli; printf "%s\\n" "${{COMPREPLY[@]}}"',
        home,
    )
    assert result.returncode == 0, result.stderr
    return [ln for ln in result.stdout.splitlines() if ln]


@pytest.mark.slow
def test_completion_offers_saved_voices_languages_and_engines(isolated_env: Path, tmp_path: Path) -> None:
    saved = isolated_env / ".local/share/speakcli/voices"
    saved.mkdir(parents=True)
    write_clip(saved / "marvin.wav", voiced(2.5, 22050), 22050)
    other = tmp_path / "elsewhere"
    other.mkdir()
    write_clip(other / "trillian.wav", voiced(2.5, 22050), 22050)
    assert "marvin" in _complete(isolated_env, 'speakcli say --voice ""')
    assert _complete(isolated_env, "speakcli say -v mar") == ["marvin"]
    # A --voices-dir typed earlier on the line is where voices are looked for.
    offered = _complete(isolated_env, f'speakcli say --voices-dir {other} --voice ""')
    assert "trillian" in offered and "marvin" not in offered
    assert _complete(isolated_env, 'speakcli say --engine ""') == ["auto", "xtts", "piper"]
    assert _complete(isolated_env, "speakcli say --engine piper -l e") == ["en"]
    assert "languages" in _complete(isolated_env, "speakcli lang")


def test_completion_imports_no_model_library(isolated_env: Path) -> None:
    saved = isolated_env / ".local/share/speakcli/voices"
    saved.mkdir(parents=True)
    write_clip(saved / "marvin.wav", voiced(2.5, 22050), 22050)
    env = {"_SPEAKCLI_COMPLETE": "complete_bash", "COMP_WORDS": "speakcli say --voice ", "COMP_CWORD": "3"}
    result = _probe(env=env)
    assert result.returncode == 0, result.stderr
    assert "marvin" in result.stdout.split()
    assert result.stderr.strip().endswith("HEAVY="), result.stderr


# -- documentation -----------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_readme_commands_exist_and_tool_installs_are_documented() -> None:
    import tomllib

    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    assert "pipx install ." in setup and "uv tool install ." in setup
    commands = set(_commands())
    blocks = re.findall(r"```sh\n(.*?)```", readme, flags=re.S)
    used = set(re.findall(r"(?:^|\| )speakcli ([a-z][a-z-]*)", "\n".join(blocks), flags=re.M))
    assert used and used <= commands, used - commands
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(d.startswith("platformdirs") for d in deps)  # speakcli.dirs imports it
