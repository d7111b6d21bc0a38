"""The service layer in process, with no CLI: every operation a front end needs, and a core free of front ends."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speakcli.errors import Hint, ModelError, OutputError
from speakcli.service import SpeechService, describe
from speakcli.settings import load_settings

CORE = [
    "speakcli",
    "speakcli.service",
    "speakcli.engines",
    "speakcli.engines.piper",
    "speakcli.audio",
    "speakcli.batch",
    "speakcli.watch",
    "speakcli.voices",
    "speakcli.report",
    "speakcli.settings",
    "speakcli.worker",
    "speakcli.serving",
    "speakcli.serving.aio",
    "speakcli.remote",
    "speakcli.adverts",
    "speakcli.warm",
    "speakcli.audio.encode",
]
FRONT_END_MODULES = ["typer", "click", "rich", "fastapi", "uvicorn", "sounddevice", "ray", "wyoming"]


def test_the_core_imports_no_front_end_library() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for m in {CORE!r}: importlib.import_module(m)\n"
        f"print(json.dumps([m for m in {FRONT_END_MODULES!r} if m in sys.modules]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


def test_piper_service_speaks_lists_describes_and_declares_it_cannot_clone(isolated_env: Path) -> None:
    settings = load_settings({"engine": "piper"})
    with SpeechService(settings) as service:
        assert not service.engine.capabilities.cloning
        chunks = list(service.speak("Hello from the service. Two sentences.", service.voice(), service.options()))
        assert sum(len(c) for c in chunks) / service.sample_rate > 1.0
        assert np.abs(np.concatenate(chunks)).max() > 0.05
        names = [v.name for v in service.voices()]
        assert "joe" in names  # the bundled reference voice
        assert all(v.cached is None for v in service.voices())  # no latents for an engine that does not clone
        report = service.describe()
        assert report["engine"]["name"] == "piper" and report["cache_dir"] == str(settings.cache_dir)
        with pytest.raises(ModelError) as caught:
            service.precompute()
        assert caught.value.hint == Hint.MODEL_DIR and caught.value.code == "cannot_clone"
    assert not service.worker.alive


@pytest.mark.slow
def test_batch_through_the_service_makes_files_and_a_manifest(tmp_path: Path) -> None:
    from speakcli.batch import read_items

    src = tmp_path / "lines.txt"
    src.write_text("First line.\n...\nSecond line.\n")
    with SpeechService(load_settings({"engine": "piper"})) as service:
        results, summary = service.batch(read_items([str(src)]), tmp_path / "out")
    assert (summary.ok, summary.skipped) == (2, 1) and [r.status for r in results].count("ok") == 2
    made = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert "manifest.jsonl" in made and len([n for n in made if n.endswith(".wav")]) == 2


def test_describe_works_without_an_engine(tmp_path: Path) -> None:
    report = describe(load_settings({"model_dir": tmp_path / "missing"}))
    assert report["engine"]["name"] is None and "does not exist" in report["engine"]["error"]


@pytest.mark.slow
@pytest.mark.xtts
def test_xtts_service_clones_lists_precomputes_and_speaks_the_clone(
    tiny_xtts_dir: Path, tone_wav, isolated_env: Path
) -> None:  # type: ignore[no-untyped-def]
    warnings: list[str] = []
    with SpeechService(load_settings({"model_dir": tiny_xtts_dir, "device": "cpu"})) as service:
        assert service.engine.capabilities.cloning
        saved = service.clone([tone_wav("me.wav")], "me", on_warning=warnings.append)
        assert saved.latents == "computed" and saved.saved_in == service.library.user_dir
        assert (service.library.user_dir / "me" / "voice.toml").is_file()
        with pytest.raises(OutputError) as caught:
            service.clone([tone_wav("again.wav")], "me")
        assert caught.value.hint == Hint.FORCE
        listed = {v.name: v for v in service.voices()}
        assert listed["me"].cached is True and listed["me"].clips
        results = {r.voice: r.status for r in service.precompute(["me"])}
        assert results == {"me": "cached"}
        audio = list(service.speak("Cloned.", service.voice("me"), service.options(stream=False)))
        assert sum(len(c) for c in audio) > 0
        unsaved = service.clone([tone_wav("other.wav", seconds=4)])
        assert unsaved.saved_in is None and unsaved.voice.is_clone
