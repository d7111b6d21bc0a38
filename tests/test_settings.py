"""Settings precedence (flag > env > config > default), validation, and XDG directories."""

from __future__ import annotations

from pathlib import Path

import pytest

from speakcli import dirs
from speakcli.errors import UsageError
from speakcli.settings import Settings, load_settings


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
        ({"env": {"SPEAKCLI_SPEED": "fast"}}, "SPEAKCLI_SPEED: speed = 'fast' is not a valid float"),
        ({"config": "speeed = 2\n"}, "unknown key(s) speeed"),
        ({"config": "speed = [\n"}, "is not valid TOML"),
        ({"flags": {"device": "cpu\n"}}, "device 'cpu\\n' is not valid"),
        ({"config": b'voice = "Jos\xe9"\n'}, "is not UTF-8 text"),
    ],
)
def test_bad_values_name_their_source(tmp_path: Path, source: dict, message: str) -> None:
    cfg = _config(tmp_path, source.get("config", ""))
    with pytest.raises(UsageError, match=None) as info:
        load_settings(source.get("flags", {}), env=source.get("env", {}), config_path=cfg)
    assert message in str(info.value)
