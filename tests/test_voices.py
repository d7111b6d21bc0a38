"""Voices and the latent cache: clone, precompute, voices; content keys, safe and atomic cache files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import run_cli
from speakcli.engines import EngineSpec, create_engine
from speakcli.engines.base import Voice
from speakcli.errors import ExitStatus, VoiceError
from speakcli.latents import CacheKey, LatentCache, Latents
from speakcli.refaudio import check_references
from speakcli.testing import speech_like_wav, tone, write_clip
from speakcli.voices import VoiceLibrary, validate_name

ROOT = Path(__file__).resolve().parents[1]


# --- reference validation -------------------------------------------------------------------------


def test_any_rate_and_channel_count_is_accepted(tmp_path: Path) -> None:
    report = check_references(
        [speech_like_wav(tmp_path / "a.wav", rate=48000, channels=2), speech_like_wav(tmp_path / "b.flac", rate=16000)]
    )
    assert [c.sample_rate for c in report.clips] == [48000, 16000]
    assert report.clips[0].channels == 2 and report.warnings == []
    assert report.total_seconds == pytest.approx(6.0, abs=0.01)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.write_text("hello, not audio"), "cannot read"),
        (lambda p: sf.write(p, np.zeros((0,), np.float32), 22050), "is empty"),
        (lambda p: sf.write(p, np.zeros(22050 * 3, np.float32), 22050), "is silent"),
        (lambda p: speech_like_wav(p, seconds=1.5), "1.5 s in total"),
    ],
    ids=["not-audio", "empty", "silence", "too-short"],
)
def test_unusable_references_are_voice_errors(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "ref.wav"
    make(path)
    with pytest.raises(VoiceError, match=message):
        check_references([path])


def test_short_clips_count_together(tmp_path: Path) -> None:
    clips = [speech_like_wav(tmp_path / f"{i}.wav", seconds=1.2, seed=i) for i in range(2)]
    assert check_references(clips).total_seconds == pytest.approx(2.4, abs=0.01)


def test_clipped_and_overlong_clips_warn(tmp_path: Path) -> None:
    loud = tmp_path / "loud.wav"
    write_clip(loud, np.clip(tone(3.0, 22050, freq=100, amplitude=3.0), -1, 1), 22050)
    long = speech_like_wav(tmp_path / "long.wav", seconds=14)
    report = check_references([loud, long], max_seconds_per_clip=10)
    assert any("loud.wav is clipped" in w for w in report.warnings)
    assert any("long.wav is 14 s long; only its first 10 s are used" in w for w in report.warnings)


@pytest.mark.parametrize("name", ["../evil", "a/b", "..", ".hidden", "", "x" * 65, "a\\b", " lead"])
def test_voice_names_cannot_leave_the_voices_dir(name: str) -> None:
    with pytest.raises(VoiceError, match="not allowed"):
        validate_name(name)


def test_library_save_is_whole_and_refuses_overwrite(tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path / "voices")
    clip = speech_like_wav(tmp_path / "me.wav")
    voice = lib.save("me", [clip], {"language": "en", "description": 'quote " and \\ back'})
    assert voice.clips == (tmp_path / "voices/me/me.wav",) and voice.language == "en"
    assert voice.meta["description"] == 'quote " and \\ back'
    from speakcli.errors import Hint, OutputError

    with pytest.raises(OutputError, match="already exists") as caught:
        lib.save("me", [clip], {})
    assert caught.value.hint == Hint.FORCE
    lib.save("me", [speech_like_wav(tmp_path / "other.wav", seed=2)], {}, force=True)
    assert sorted(p.name for p in (tmp_path / "voices").iterdir()) == ["me"]
    assert [c.name for c in lib.find("me").clips] == ["other.wav"]  # type: ignore[union-attr]


# --- the cache file format ------------------------------------------------------------------------


def _key(clip: str = "c1") -> CacheKey:
    return CacheKey.build([clip], "model-a", {"gpt_cond_len": 12})


def _latents(seed: int = 0) -> Latents:
    rng = np.random.default_rng(seed)
    return Latents(
        rng.standard_normal((1, 32, 64)).astype(np.float32), rng.standard_normal((1, 512, 1)).astype(np.float32)
    )


def test_cache_round_trip_and_key_parts(tmp_path: Path) -> None:
    cache = LatentCache(tmp_path)
    cache.put(_key(), _latents())
    got = cache.get(_key())
    assert got is not None and np.array_equal(got.speaker_embedding, _latents().speaker_embedding)
    assert CacheKey.build(["x", "y"], "m", {}) == CacheKey.build(["y", "x"], "m", {})  # clip order is irrelevant
    assert cache.get(CacheKey.build(["c1"], "model-b", {"gpt_cond_len": 12})) is None
    assert cache.get(CacheKey.build(["c1"], "model-a", {"gpt_cond_len": 6})) is None


@pytest.mark.parametrize("damage", ["truncate", "garbage", "wrong-key"])
def test_corrupt_entries_are_reported_once_and_missed(tmp_path: Path, damage: str) -> None:
    warnings: list[str] = []
    cache = LatentCache(tmp_path, warn=warnings.append)
    path = cache.put(_key(), _latents())
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    elif damage == "garbage":
        path.write_bytes(b"\x00" * 1000)
    else:
        other = cache.put(_key("other"), _latents(1))
        shutil.copy(other, path)
    assert cache.get(_key()) is None
    assert cache.get(_key()) is None
    assert len(warnings) == 1
    cache.put(_key(), _latents())
    assert cache.get(_key()) is not None


# --- with the tiny XTTS model ---------------------------------------------------------------------


@pytest.fixture
def xtts_engine(tiny_xtts_dir: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    def make():  # a fresh engine: as a new process would see it, sharing only the disk cache
        return create_engine(EngineSpec("xtts", tiny_xtts_dir, "cpu", cache_dir=tmp_path / "cache"))

    return make


class _Exploit:
    """Unpickling this runs `touch MARKER`: what a poisoned cache entry would do under allow_pickle=True."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.xtts
@pytest.mark.slow
def test_a_pickle_in_the_cache_is_never_run_and_the_entry_is_recomputed(xtts_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = xtts_engine()
    warnings: list[str] = []
    engine.latents.cache._warn = warnings.append
    voice = Voice("v", clips=(speech_like_wav(tmp_path / "a.wav"),))
    key = engine.latents.key(voice.clips)
    marker = tmp_path / "pwned"
    # A whole, valid entry (the right key, a good speaker embedding) except for one pickled object array.
    path = engine.latents.cache.path(key)
    path.parent.mkdir(parents=True)
    with path.open("wb") as fh:
        np.savez(
            fh,
            gpt_cond_latent=np.array([_Exploit(marker)], dtype=object),
            speaker_embedding=np.zeros((1, 512, 1), np.float32),
            key=np.frombuffer(json.dumps(LatentCache._key_json(key)).encode(), dtype=np.uint8),
        )
    assert engine.ensure_latents(voice) == "computed"
    assert not marker.exists()
    assert warnings == [f"latent cache entry {path.name} is corrupt; recomputing it"]
    assert engine.latents.computed == 1
    fresh = engine.latents.cache.get(key)  # replaced by a good entry
    assert fresh is not None and fresh.gpt_cond_latent.dtype == np.float32


@pytest.mark.xtts
@pytest.mark.slow
def test_cache_is_content_keyed_across_processes(xtts_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = speech_like_wav(tmp_path / "a.wav")
    first = xtts_engine()
    assert first.ensure_latents(Voice("v", clips=(clip,))) == "computed"
    again = xtts_engine()
    assert again.ensure_latents(Voice("v", clips=(clip,))) == "cached"
    assert again.latents.computed == 0
    # Renaming keeps the entry; replacing the contents invalidates it.
    renamed = clip.rename(tmp_path / "renamed.wav")
    assert xtts_engine().latents_cached(Voice("v", clips=(renamed,)))
    speech_like_wav(renamed, seed=3)
    assert not xtts_engine().latents_cached(Voice("v", clips=(renamed,)))
    assert xtts_engine().ensure_latents(Voice("v", clips=(renamed,))) == "computed"


@pytest.mark.xtts
@pytest.mark.slow
def test_say_uses_cached_latents_and_they_match_fresh_ones(xtts_engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = speech_like_wav(tmp_path / "a.wav", seconds=4, rate=44100, channels=2)
    voice = Voice("v", clips=(clip,))
    engine = xtts_engine()
    engine.ensure_latents(voice)
    cached = engine.latents.cache.get(engine.latents.key(voice.clips))
    fresh = engine.compute_latents(voice.clips)
    assert np.allclose(cached.gpt_cond_latent, fresh[0]) and np.allclose(cached.speaker_embedding, fresh[1])


@pytest.mark.xtts
@pytest.mark.slow
def test_clone_saves_caches_and_speaks(
    tiny_xtts_dir: Path, tmp_path: Path, isolated_env: Path, voices_dir: Path
) -> None:
    ref = speech_like_wav(tmp_path / "me.wav", seconds=4, rate=48000, channels=2)
    out = tmp_path / "me-says.wav"
    result = run_cli(
        "clone",
        str(ref),
        "--name",
        "me",
        "--text",
        "Hello in my voice.",
        "-o",
        str(out),
        "--model-dir",
        str(tiny_xtts_dir),
    )
    assert result.returncode == 0, result.stderr
    assert b"computed latents for voice 'me'" in result.stderr
    saved = voices_dir / "me"
    assert sorted(p.name for p in saved.iterdir()) == ["me.wav", "voice.toml"]
    assert sf.info(out).samplerate == 24000
    assert len(list((isolated_env / ".cache/speakcli/latents").glob("*.npz"))) == 1
    # Cached from now on: voices says so, and a second clone under --force finds the entry.
    listing = json.loads(run_cli("voices", "--json", "--model-dir", str(tiny_xtts_dir)).stdout)
    me = next(v for v in listing["voices"] if v["name"] == "me")
    assert me["cached"] is True and me["seconds"] == pytest.approx(4.0, abs=0.01) and me["language"] == "en"
    again = run_cli("clone", str(ref), "--name", "me", "--model-dir", str(tiny_xtts_dir))
    assert again.returncode == ExitStatus.OUTPUT and b"--force" in again.stderr
    forced = run_cli("clone", str(ref), "--name", "me", "--force", "--model-dir", str(tiny_xtts_dir))
    assert forced.returncode == 0 and b"cached latents" in forced.stderr
    spoken = run_cli("say", "Hi.", "--voice", "me", "--model-dir", str(tiny_xtts_dir), "-o", str(tmp_path / "s.wav"))
    assert spoken.returncode == 0, spoken.stderr


@pytest.mark.xtts
@pytest.mark.slow
def test_clone_rejects_bad_references_before_saving(tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path) -> None:
    short = speech_like_wav(tmp_path / "short.wav", seconds=1.0)
    result = run_cli("clone", str(short), "--name", "short", "--model-dir", str(tiny_xtts_dir))
    assert result.returncode == ExitStatus.VOICE and b"at least 2 s" in result.stderr
    assert not (voices_dir / "short").exists()


@pytest.mark.xtts
@pytest.mark.slow
def test_precompute_computes_skips_and_reports_failures(tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path) -> None:
    (voices_dir / "good").mkdir(parents=True)
    speech_like_wav(voices_dir / "good/a.wav")
    (voices_dir / "broken").mkdir()
    (voices_dir / "broken/a.wav").write_text("not audio")
    first = run_cli("precompute", "--json", "--model-dir", str(tiny_xtts_dir))
    assert first.returncode == ExitStatus.PARTIAL
    status = {r["voice"]: r["status"] for r in json.loads(first.stdout)}
    assert status == {"good": "computed", "broken": "failed", "joe": "computed"}
    second = run_cli("precompute", "good", "joe", "--json", "--model-dir", str(tiny_xtts_dir))
    assert second.returncode == 0
    assert {r["voice"]: r["status"] for r in json.loads(second.stdout)} == {"good": "cached", "joe": "cached"}
    forced = run_cli("precompute", "good", "--force", "--json", "--model-dir", str(tiny_xtts_dir))
    assert json.loads(forced.stdout) == [{"voice": "good", "status": "computed", "detail": ""}]
    unknown = run_cli("precompute", "nobody", "--model-dir", str(tiny_xtts_dir))
    assert unknown.returncode == ExitStatus.VOICE


@pytest.mark.xtts
@pytest.mark.slow
def test_two_processes_precomputing_at_once_leave_one_valid_entry(
    tiny_xtts_dir: Path, isolated_env: Path, voices_dir: Path
) -> None:
    (voices_dir / "shared").mkdir(parents=True)
    speech_like_wav(voices_dir / "shared/a.wav", seconds=6)
    cmd = [sys.executable, "-m", "speakcli", "precompute", "shared", "--force", "-q", "--model-dir", str(tiny_xtts_dir)]
    procs = [subprocess.Popen(cmd, stderr=subprocess.PIPE) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    cache_dir = isolated_env / ".cache/speakcli/latents"
    assert len(list(cache_dir.glob("*.npz"))) == 1 and not list(cache_dir.glob(".*.part"))
    engine = create_engine(EngineSpec("xtts", tiny_xtts_dir, "cpu", cache_dir=isolated_env / ".cache/speakcli"))
    assert engine.latents_cached(VoiceLibrary(voices_dir).find("shared"))  # type: ignore[attr-defined,arg-type]


def test_voices_lists_the_bundled_voice_and_says_why_a_voice_is_broken(voices_dir: Path) -> None:
    (voices_dir / "empty").mkdir(parents=True)
    result = run_cli("voices", "--json")
    listing = json.loads(result.stdout)
    by_name = {v["name"]: v for v in listing["voices"]}
    assert by_name["joe"]["source"] == str(ROOT / "voices") and by_name["joe"]["cached"] is None
    assert "has no audio clips" in by_name["empty"]["error"]


def test_clone_without_xtts_says_so(tmp_path: Path) -> None:
    result = run_cli("clone", str(speech_like_wav(tmp_path / "a.wav")), "--name", "a")
    assert result.returncode == ExitStatus.MODEL
    assert b"cloning needs an XTTS model" in result.stderr
