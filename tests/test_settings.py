"""Settings precedence (flag > env > config > default), validation, config errors, and the platform folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakcli import dirs
from speakcli.errors import UsageError
from speakcli.settings import Settings, load_settings, resolve_settings


def _config(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "config.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_defaults_when_nothing_is_set(tmp_path: Path) -> None:
    s = load_settings({}, env={}, config_path=tmp_path / "missing.toml")
    assert s == Settings()
    assert s.voices_dir == dirs.data_dir() / "voices"


def test_flag_beats_env_beats_config_beats_default(tmp_path: Path) -> None:
    cfg = _config(tmp_path, 'speed = 1.5\nlanguage = "de"\npause = 0.5\n')
    env = {"SPEAKCLI_SPEED": "2.0", "SPEAKCLI_LANGUAGE": "fr"}
    s = load_settings({"speed": 3.0}, env=env, config_path=cfg)
    assert s.speed == 3.0  # flag
    assert s.language == "fr"  # env over config
    assert s.pause == 0.5  # config over default
    assert s.temperature == Settings().temperature  # default


def test_model_dir_env_var_is_speakcli_xtts_dir(tmp_path: Path) -> None:
    s = load_settings({}, env={"SPEAKCLI_XTTS_DIR": "~/models/xtts"}, config_path=tmp_path / "none.toml")
    assert s.model_dir == Path.home() / "models/xtts"


def test_config_file_location_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "cfg/speakcli").mkdir(parents=True)
    (tmp_path / "cfg/speakcli/config.toml").write_text('engine = "piper"\n')
    assert load_settings({}, env={}).engine == "piper"


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"flags": {"engine": "espeak"}}, "engine 'espeak' is unknown"),
        ({"flags": {"device": "gpu"}}, "device 'gpu' is not valid"),
        ({"flags": {"speed": 0.1}}, "speed 0.1 is out of range"),
        ({"env": {"SPEAKCLI_SPEED": "fast"}}, "SPEAKCLI_SPEED: speed = 'fast' is not a number"),
        ({"env": {"SPEAKCLI_ENGINE": "espeak"}}, "SPEAKCLI_ENGINE: engine = 'espeak' is unknown"),
        ({"config": "speeed = 2\n"}, "CFG: unknown key(s) speeed"),
        ({"config": "speed = [\n"}, "config file CFG is not valid TOML: "),
        ({"config": "speed = " + "[" * 5000}, "config file CFG is not valid TOML: nested too deeply"),
        ({"config": "speed = [\n"}, "in 'speed = ['"),  # the key, even when TOML cannot parse the line
        ({"config": 'speed = 1..5\nlanguage = "de"\n'}, "(at line 1, column 10) in 'speed = 1..5'"),
        ({"config": "speed = 10\n"}, "config file CFG: speed = 10 is out of range"),
        ({"config": 'speed = "fast"\n'}, "config file CFG: speed = 'fast' is not a number"),
        ({"config": "voice = 3\n"}, "config file CFG: voice = 3 is not a string"),
        ({"config": 'engine = "espeak"\n'}, "config file CFG: engine = 'espeak' is unknown"),
        ({"flags": {"device": "cpu\n"}}, "device 'cpu\\n' is not valid"),
        ({"config": b'voice = "Jos\xe9"\n'}, "config file CFG is not UTF-8 text"),
    ],
)
def test_bad_values_name_their_source(tmp_path: Path, source: dict, message: str) -> None:
    cfg = _config(tmp_path, source.get("config", ""))
    with pytest.raises(UsageError) as info:
        load_settings(source.get("flags", {}), env=source.get("env", {}), config_path=cfg)
    assert message.replace("CFG", str(cfg)) in str(info.value)


def test_speakcli_config_names_the_file_and_must_exist(tmp_path: Path) -> None:
    named = _config(tmp_path, 'engine = "piper"\n')
    assert load_settings({}, env={"SPEAKCLI_CONFIG": str(named)}, config_path=tmp_path / "x.toml").engine == "piper"
    missing = tmp_path / "typo.toml"
    with pytest.raises(UsageError) as info:
        load_settings({}, env={"SPEAKCLI_CONFIG": str(missing)}, config_path=tmp_path / "x.toml")
    assert f"config file {missing} (named by SPEAKCLI_CONFIG) does not exist" in str(info.value)
    # The default file may be absent: that is no config, not an error.
    assert load_settings({}, env={}, config_path=missing) == Settings()


def test_resolve_settings_reports_every_problem_and_falls_through_to_the_next_source(tmp_path: Path) -> None:
    cfg = _config(tmp_path, "speed = 1.5\nlanguage = 4\nbogus = 1\npause = 0.5\n")
    settings, problems = resolve_settings({}, env={"SPEAKCLI_SPEED": "fast"}, config_path=cfg)
    assert settings.speed == 1.5  # the bad env var is skipped: the config decides
    assert settings.language == "en"  # the bad config value is skipped: the default decides
    assert settings.pause == 0.5  # a good key of a file with a bad one is still used
    assert len(problems) == 3
    assert any("SPEAKCLI_SPEED" in p for p in problems)
    assert any(str(cfg) in p and "language = 4" in p for p in problems)
    assert any(str(cfg) in p and "bogus" in p for p in problems)
    broken = _config(tmp_path, "speed = [\n")
    settings, problems = resolve_settings({}, env={}, config_path=broken)
    assert settings == Settings() and len(problems) == 1 and "not valid TOML" in problems[0]


def test_linux_folders_are_the_xdg_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dirs.sys, "platform", "linux")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var)
    home = Path.home()
    assert dirs.all_dirs() == {
        "config": str(home / ".config/speakcli"),
        "data": str(home / ".local/share/speakcli"),
        "cache": str(home / ".cache/speakcli"),
        "state": str(home / ".local/state/speakcli"),
    }
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")  # the XDG spec: relative paths are ignored
    assert dirs.state_dir() == tmp_path / "state/speakcli"
    assert dirs.config_file() == home / ".config/speakcli/config.toml"


def test_macos_and_windows_folders_follow_their_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME"):
        monkeypatch.delenv(var)
    mac = dirs.app_dirs("darwin")
    assert mac.user_config_dir == str(Path.home() / "Library/Application Support/speakcli")
    assert mac.user_cache_dir == str(Path.home() / "Library/Caches/speakcli")
    # platformdirs reads Windows' known folders through the system; this variable stands in for it off Windows.
    monkeypatch.setenv("WIN_PD_OVERRIDE_LOCAL_APPDATA", r"C:\Users\me\AppData\Local")
    win = dirs.app_dirs("win32")
    assert win.user_data_dir.replace("/", "\\") == r"C:\Users\me\AppData\Local\speakcli"
    assert win.user_cache_dir.replace("/", "\\") == r"C:\Users\me\AppData\Local\speakcli\Cache"
