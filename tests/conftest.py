"""Shared fixtures: isolated dirs and env, marker skips, the tiny XTTS model, and a leaked-thread guard."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from speakcli.engines import xtts_installed
from speakcli.testing import voiced, write_clip

# PulseAudio finds its server through XDG_RUNTIME_DIR/HOME, which the tests isolate: name the sink CI started,
# before the probe below, so the probe and the tests see the same devices.
if "PULSE_SERVER" not in os.environ and os.path.exists("/tmp/speakcli-pulse/native"):
    os.environ["PULSE_SERVER"] = "unix:/tmp/speakcli-pulse/native"


def _audio_output_available() -> bool:
    try:
        import sounddevice as sd

        return any(d["max_output_channels"] > 0 for d in sd.query_devices()) and sd.default.device[1] >= 0
    except Exception:
        return False


def _cuda_available() -> bool:
    if not xtts_installed():
        return False
    import torch

    return bool(torch.cuda.is_available())


HAVE_AUDIO = _audio_output_available()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {
        "xtts": (xtts_installed(), "coqui-tts/torch not installed: pip install -e '.[xtts,test]'"),
        "audio": (HAVE_AUDIO, "no audio output device (CI starts a PulseAudio null sink; see .ci/run)"),
        "gpu": (_cuda_available(), "no CUDA device"),
    }
    # CI names the resources it provides; a missing one there is a failure, not a quiet skip.
    required = {r for r in os.environ.get("SPEAKCLI_TEST_REQUIRE", "").split(",") if r}
    for marker in sorted(required & reasons.keys()):
        if not reasons[marker][0]:
            raise pytest.UsageError(f"SPEAKCLI_TEST_REQUIRE names {marker!r}, but: {reasons[marker][1]}")
    for item in items:
        for marker, (ok, why) in reasons.items():
            if marker in item.keywords and not ok:
                item.add_marker(pytest.mark.skip(reason=why))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own home, XDG dirs (the runtime dir too: no server another test or the user runs is
    found for a warm start) and model stores, no SPEAKCLI_* from the caller, and NO_COLOR."""
    home = tmp_path / "home"
    home.mkdir()
    for key in list(os.environ):
        if key.startswith("SPEAKCLI_") or key in ("TTS_HOME", "COQUI_TOS_AGREED"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / ".local/share"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("HF_HOME", str(home / ".cache/huggingface"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / ".cache/huggingface/hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def voices_dir(isolated_env: Path) -> Path:
    """Where speakcli saves voices in the test's home (not created)."""
    return isolated_env / ".local/share/speakcli/voices"


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    """Fail a test that leaves a thread running: every service, worker and daemon a test opens, it must close."""
    before = set(threading.enumerate())
    yield
    leaked = [
        t
        for t in threading.enumerate()
        if t not in before and t.is_alive() and (t.name.startswith("speakcli") or not t.daemon)
    ]
    for t in leaked:
        t.join(timeout=5)
    leaked = [t for t in leaked if t.is_alive()]
    assert not leaked, f"threads left running: {[t.name for t in leaked]}"


@pytest.fixture(scope="session")
def tiny_xtts_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random tiny XTTS v2 folder in the real layout (config.json, model.pth, vocab.json), built once."""
    if not xtts_installed():
        pytest.skip("coqui-tts/torch not installed")
    from speakcli.testing.tiny_xtts import build_tiny_xtts

    return build_tiny_xtts(tmp_path_factory.mktemp("tiny-xtts"))


@pytest.fixture
def tone_wav(tmp_path: Path) -> Callable[..., Path]:
    """Write a test clip: a voiced-like signal at a given rate/channels/length."""

    def make(name: str = "ref.wav", seconds: float = 3.0, rate: int = 22050, channels: int = 1) -> Path:
        return write_clip(tmp_path / name, voiced(seconds, rate, channels=channels), rate)

    return make
