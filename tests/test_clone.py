"""clone and reference clips: any libsndfile format, nothing half-made, selectable names, bounded memory;
a latent cache that cannot be written, or holds junk, never fails synthesis."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import run_cli
from speakcli.engines import EngineSpec, create_engine
from speakcli.engines.base import Voice
from speakcli.errors import ExitStatus, OutputError, VoiceError
from speakcli.latents import CacheKey, LatentCache, Latents
from speakcli.testing import speech_like_wav, tone
from speakcli.voices import VoiceLibrary, validate_name


@pytest.fixture
def speakcli_log() -> Iterator[list[str]]:
    """The speakcli logger's messages (it does not propagate to pytest's caplog)."""
    messages: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: messages.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("speakcli")
    logger.addHandler(handler)
    old = logger.level
    logger.setLevel(logging.INFO)
    yield messages
    logger.removeHandler(handler)
    logger.setLevel(old)


# --- names and formats -----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.wav", "me.MP3", "a.b.flac", "take.opus"])
def test_a_voice_name_that_voice_would_take_for_a_file_is_refused(name: str) -> None:
    stem = name.rsplit(".", 1)[0]
    with pytest.raises(VoiceError, match=f"choosing it would pick a file; name it '{stem}'"):
        validate_name(name)


def test_names_with_other_dots_stay_allowed() -> None:
    assert validate_name("v1.2") == "v1.2" and validate_name("joe.old") == "joe.old"


def test_voice_folders_and_bare_file_names_take_any_format_soundfile_reads(tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path / "voices")
    (tmp_path / "voices/me").mkdir(parents=True)
    speech_like_wav(tmp_path / "voices/me/a.mp3", format="MP3")
    speech_like_wav(tmp_path / "voices/me/b.opus", rate=48000, format="OGG", subtype="OPUS")
    found = lib.find("me")
    assert found is not None and [c.name for c in found.clips] == ["a.mp3", "b.opus"]
    assert [e.error for e in lib.all() if e.name == "me"] == [None]
    # The test runs in tmp_path: a bare name of a file here is that file, as ./NAME would be.
    mp3 = speech_like_wav(tmp_path / "mine.mp3", format="MP3")
    assert lib.resolve("mine.mp3") == Voice(name="mine", clips=(mp3.resolve(),))
    shutil.copy(mp3, tmp_path / "take2")
    assert lib.resolve("take2") == Voice(name="take2", clips=((tmp_path / "take2").resolve(),))
    # ...unless a saved voice has that name: `--voice me` stays the saved voice.
    shutil.copy(mp3, tmp_path / "me")
    assert lib.resolve("me") == found


# --- clone end to end ------------------------------------------------------------------------------


@pytest.mark.xtts
@pytest.mark.slow
def test_clone_from_an_mp3_then_select_it_by_name_and_by_file(
    tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path
) -> None:
    from speakcli.cli import main

    speech_like_wav(tmp_path / "me.mp3", seconds=4, rate=44100, channels=2, format="MP3")
    model = ["--model-dir", str(tiny_xtts_dir), "-q"]
    assert main(["clone", "me.mp3", "--name", "me", "--text", "Hi.", "-o", "a.wav", *model]) == 0
    assert sorted(p.name for p in (voices_dir / "me").iterdir()) == ["me.mp3", "voice.toml"]
    assert sf.info(tmp_path / "a.wav").samplerate == 24000
    assert main(["say", "Hi.", "--voice", "me", "-o", "b.wav", *model]) == 0
    assert main(["say", "Hi.", "--voice", "me.mp3", "-o", "c.wav", *model]) == 0
    assert main(["precompute", "--json", *model]) == 0


@pytest.mark.xtts
@pytest.mark.slow
def test_a_clone_that_fails_leaves_nothing_behind(tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path) -> None:
    from speakcli.cli import main

    # The clips pass every check; the model then fails while computing the latents.
    broken = tmp_path / "broken-model"
    shutil.copytree(tiny_xtts_dir, broken)
    (broken / "model.pth").write_bytes(b"not a checkpoint" * 100)
    ref = speech_like_wav(tmp_path / "new.wav", seconds=3, seed=1)
    old = VoiceLibrary(voices_dir).save("kept", [speech_like_wav(tmp_path / "old.wav")], {"language": "en"})
    before = sorted(p.relative_to(voices_dir) for p in voices_dir.rglob("*"))
    for args in (["--name", "fresh"], ["--name", "kept", "--force"]):
        assert main(["clone", str(ref), *args, "-q", "--model-dir", str(broken)]) == ExitStatus.MODEL
    # No new voice, no hidden staging folder, and the voice --force would have replaced is untouched.
    assert sorted(p.relative_to(voices_dir) for p in voices_dir.rglob("*")) == before
    assert [c.name for c in old.clips] == ["old.wav"]


@pytest.mark.xtts
@pytest.mark.slow
def test_clone_refuses_a_language_the_model_lacks_before_anything_is_saved(
    tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path
) -> None:
    ref = speech_like_wav(tmp_path / "me.wav", seconds=3)
    result = run_cli(
        "clone", str(ref), "--name", "me", "-l", "zz", "-q", "--model-dir", str(tiny_xtts_dir), timeout=120
    )
    stderr = result.stderr.decode()
    assert result.returncode == ExitStatus.USAGE, stderr
    assert stderr.count("\n") == 1 and "language 'zz' is not supported by the xtts engine" in stderr, stderr
    assert not (voices_dir / "me").exists()


def test_a_voice_committed_under_a_name_another_took_meanwhile_is_a_conflict(tmp_path: Path) -> None:
    lib = VoiceLibrary(tmp_path / "voices")
    clip = speech_like_wav(tmp_path / "a.wav")
    first = lib.stage("same", [clip], {"language": "en"})
    second = lib.stage("same", [clip], {"language": "en"})  # both checked the name before either was saved
    try:
        first.commit()
        with pytest.raises(OutputError) as refused:
            second.commit()
    finally:
        first.discard()
        second.discard()
    assert refused.value.code == "conflict" and "already exists" in str(refused.value)
    assert sorted(p.name for p in (tmp_path / "voices").iterdir()) == ["same"]


# --- memory: only what the model uses is read or stored ---------------------------------------------

_LONG_SECONDS, _LONG_CHANNELS, _LONG_RATE = 150, 16, 16000  # 38M samples: 154 MB as float32, 77 MB on disk


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A long many-channel recording: reading it whole takes ~150 MB (plus a mono copy); its used 10 s, ~10 MB."""
    path = tmp_path_factory.mktemp("long") / "long.wav"
    rng = np.random.default_rng(0)
    block = _LONG_RATE * 10
    clip = tone(10.0, _LONG_RATE, freq=140, amplitude=0.3)
    with sf.SoundFile(path, "w", _LONG_RATE, _LONG_CHANNELS, "PCM_16") as fh:
        for _ in range(_LONG_SECONDS // 10):
            noise = 0.01 * rng.standard_normal((block, 1)).astype(np.float32)
            fh.write(np.repeat(clip[:, None] + noise, _LONG_CHANNELS, axis=1))
    return path


_BOUNDED = r"""
import resource, sys
from pathlib import Path
import soundfile as sf
from speakcli.refaudio import check_references
from speakcli.voices import VoiceLibrary

# The address space now, plus 64 MB: far less than the 150+ MB a whole read of the clip needs.
size = int(open("/proc/self/statm").read().split()[0]) * resource.getpagesize() + (64 << 20)
resource.setrlimit(resource.RLIMIT_AS, (size, size))
clip, voices = Path(sys.argv[1]), Path(sys.argv[2])
report = check_references([clip], 10.0)
voice = VoiceLibrary(voices).save("long", [clip], {}, max_seconds=10.0)
info = sf.info(str(voice.clips[0]))
print(report.clips[0].seconds, report.total_seconds, voice.clips[0].name, info.duration, info.channels)
"""


def test_checking_and_saving_a_long_clip_reads_and_stores_only_what_is_used(long_clip: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _BOUNDED, str(long_clip), str(tmp_path / "voices")], capture_output=True, timeout=120
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    whole, used, stored, stored_seconds, channels = result.stdout.decode().split()
    assert float(whole) == _LONG_SECONDS and float(used) == 10.0
    # More than FLAC's 8 channels: kept as float WAV, cut to the 10 s the model uses.
    assert stored == "long.wav" and float(stored_seconds) == 10.0 and int(channels) == _LONG_CHANNELS


@pytest.mark.xtts
@pytest.mark.slow
def test_latents_read_only_the_used_part_of_a_long_clip(tiny_xtts_dir: Path, long_clip: Path) -> None:
    engine = create_engine(EngineSpec("xtts", tiny_xtts_dir, "cpu"))
    engine.load()
    tracemalloc.start()
    try:
        engine.compute_latents((long_clip,))  # type: ignore[attr-defined]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # 10 s of 16 kHz mono is 0.6 MB and a read block 1 MB; all 150 s would be 9.6 MB mono, 154 MB as read.
    assert peak < 6 << 20, f"{peak / 2**20:.1f} MB of numpy memory for 10 s of audio"


# --- the latent cache is only an optimisation -------------------------------------------------------


def _latents() -> Latents:
    rng = np.random.default_rng(0)
    return Latents(
        rng.standard_normal((1, 32, 64)).astype(np.float32), rng.standard_normal((1, 512, 1)).astype(np.float32)
    )


def test_a_folder_in_place_of_a_cache_entry_is_a_corrupt_entry(tmp_path: Path) -> None:
    warnings: list[str] = []
    cache = LatentCache(tmp_path / "cache", warn=warnings.append)
    key, other = CacheKey.build(["a"], "m", {}), CacheKey.build(["b"], "m", {})
    cache.path(key).mkdir(parents=True)
    assert cache.get(key) is None
    assert warnings == [f"latent cache entry {cache.path(key).name} is corrupt; recomputing it"]
    assert cache.put(key, _latents()) == cache.path(key) and cache.get(key) is not None  # an empty one is replaced
    (cache.path(other) / "inside").mkdir(parents=True)  # a full one cannot be: not cached, said once
    assert cache.put(other, _latents()) is None and cache.put(other, _latents()) is None
    assert len(warnings) == 2 and "going on without caching" in warnings[1]


_FULL = r"""
import resource, signal, sys
from pathlib import Path
import numpy as np
from speakcli.latents import CacheKey, LatentCache, Latents

# A file-size limit makes every write past 1 KB fail with EFBIG, as a full disk fails with ENOSPC.
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, 1024))
warnings = []
cache = LatentCache(Path(sys.argv[1]), warn=warnings.append)
latents = Latents(np.zeros((1, 32, 64), np.float32), np.zeros((1, 512, 1), np.float32))
print(cache.put(CacheKey.build(["a"], "m", {}), latents), cache.put(CacheKey.build(["b"], "m", {}), latents))
print(warnings)
"""


def test_a_full_cache_disk_is_warned_about_once_and_leaves_no_temp_files(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-c", _FULL, str(tmp_path / "c")], capture_output=True, timeout=60)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    puts, warnings = result.stdout.decode().splitlines()
    assert puts == "None None"
    assert warnings.count("going on without caching") == 1 and "File too large" in warnings
    assert list((tmp_path / "c").iterdir()) == []


@pytest.mark.xtts
@pytest.mark.slow
def test_clone_and_say_go_on_without_a_writable_cache(
    tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path, speakcli_log: list[str]
) -> None:
    from speakcli.cli import main

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    ref = speech_like_wav(tmp_path / "me.wav", seconds=3)
    cache = ["--model-dir", str(tiny_xtts_dir), "-q"]
    env = {"SPEAKCLI_CACHE_DIR": str(blocker / "cache")}
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        assert main(["clone", str(ref), "--name", "me", "--text", "Hi.", "-o", "a.wav", *cache]) == 0
        assert main(["say", "Hello again.", "--voice", "me", "-o", "b.wav", *cache]) == 0
        other = speech_like_wav(tmp_path / "other.wav", seed=2)
        assert main(["say", "And you.", "--voice", str(other), "-o", "c.wav", *cache]) == 0
        assert (voices_dir / "me/me.wav").is_file() and (tmp_path / "c.wav").is_file()
        # Each command is its own process, with its own service: each warns once.
        assert sum("going on without caching" in m for m in speakcli_log) == 3, speakcli_log
        # Within one service (a server, a daemon), a second failing write is not reported again.
        from speakcli.service import SpeechService
        from speakcli.settings import load_settings

        with SpeechService(load_settings({"model_dir": tiny_xtts_dir})) as service:
            for clip in (ref, other):
                assert service.clone([clip]).latents == "computed"
    assert sum("going on without caching" in m for m in speakcli_log) == 4, speakcli_log


@pytest.mark.xtts
@pytest.mark.slow
def test_a_cache_entry_that_is_a_folder_is_recomputed_not_a_crash(
    tiny_xtts_dir: Path, tmp_path: Path, speakcli_log: list[str]
) -> None:
    from speakcli.engines.base import SynthesisOptions

    engine = create_engine(EngineSpec("xtts", tiny_xtts_dir, "cpu", cache_dir=tmp_path / "cache"))
    voice = Voice("v", clips=(speech_like_wav(tmp_path / "a.wav"),))
    entry = engine.latents.cache.path(engine.latents.key(voice.clips))  # type: ignore[attr-defined]
    (entry / "junk").mkdir(parents=True)
    assert engine.ensure_latents(voice) == "computed"  # type: ignore[attr-defined]
    audio = list(engine.synthesize("Hi.", voice, SynthesisOptions(stream=False)))
    assert audio and np.isfinite(audio[0]).all()
    assert any("is corrupt; recomputing it" in m for m in speakcli_log)


def test_voices_json_lists_an_mp3_voice(voices_dir: Path) -> None:
    (voices_dir / "mp").mkdir(parents=True)
    speech_like_wav(voices_dir / "mp/take.mp3", format="MP3")
    listing = json.loads(run_cli("voices", "--json").stdout)
    mp = next(v for v in listing["voices"] if v["name"] == "mp")
    assert mp["error"] is None and mp["clips"] == ["take.mp3"] and mp["seconds"] == pytest.approx(3.0, abs=0.1)
