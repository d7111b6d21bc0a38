"""The XTTS engine on a tiny random model loaded through the same path as real XTTS v2 weights."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import read, run_cli
from speakcli.engines import choose_engine, coqui_store_model
from speakcli.engines.base import SynthesisOptions, Voice
from speakcli.errors import ExitStatus
from speakcli.service import SpeechService, utterance
from speakcli.settings import load_settings
from speakcli.testing import tone, voiced, write_clip

pytestmark = [pytest.mark.xtts, pytest.mark.slow]


def _copy_model(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        os.symlink(f, dst / f.name)
    return dst


def test_say_with_the_tiny_model_gives_finite_24khz_audio(tiny_xtts_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    result = run_cli("say", "Hello there. This is a test.", "--model-dir", str(tiny_xtts_dir), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert b"using xtts from model folder" in result.stderr
    audio, rate = read(out)
    assert rate == 24000
    assert len(audio) > 24000 * 0.5  # two sentences, each ~1 s at the tiny model's token cap, plus a pause
    assert np.all(np.isfinite(audio))


def test_env_var_model_dir_makes_auto_pick_xtts(tiny_xtts_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.wav"
    result = run_cli("say", "Hi.", "-o", str(out), env={"SPEAKCLI_XTTS_DIR": str(tiny_xtts_dir)})
    assert result.returncode == 0, result.stderr
    assert read(out)[1] == 24000


def test_model_from_coqui_download_store_is_found(tiny_xtts_dir: Path, tmp_path: Path) -> None:
    # Lay the model out the way huggingface_hub caches coqui's download of tts-hub/XTTS-v2.
    repo = Path(os.environ["HF_HUB_CACHE"]) / "models--tts-hub--XTTS-v2"
    revision = "0123456789abcdef0123456789abcdef01234567"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs/main").write_text(revision)
    (repo / "snapshots").mkdir()
    _copy_model(tiny_xtts_dir, repo / "snapshots" / revision)
    assert coqui_store_model() == repo / "snapshots" / revision
    out = tmp_path / "x.wav"
    result = run_cli("say", "Hi.", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert b"coqui's downloaded XTTS v2" in result.stderr
    assert read(out)[1] == 24000


def test_cloning_from_a_44khz_stereo_reference(tiny_xtts_dir: Path, tone_wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ref = tone_wav("ref44.wav", seconds=4, rate=44100, channels=2)
    out = tmp_path / "clone.wav"
    result = run_cli("say", "Cloned.", "--model-dir", str(tiny_xtts_dir), "--voice", str(ref), "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert read(out)[1] == 24000


def test_latents_depend_on_the_reference_audio(tiny_xtts_dir: Path, tone_wav) -> None:  # type: ignore[no-untyped-def]
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(tiny_xtts_dir, device="cpu")
    a = engine.compute_latents((tone_wav("a.wav", rate=22050),))
    a_again = engine.compute_latents((tone_wav("a2.wav", rate=22050),))
    b = engine.compute_latents((tone_wav("b.wav", seconds=5, rate=16000),))
    assert np.array_equal(a[0], a_again[0]) and np.array_equal(a[1], a_again[1])
    assert not np.array_equal(a[1], b[1])
    assert a[1].shape == (1, 512, 1)


def test_multi_clip_latents_are_coquis_over_every_clip(
    tiny_xtts_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A voice of several clips conditions on all of them: the GPT latent on their joined audio, the speaker
    # embedding the mean of each clip's. The reference is coqui's own get_conditioning_latents over the same
    # files, with the model's latent settings, on the same folder loaded by coqui's code alone.
    import soundfile as sf
    import torch
    import torchaudio

    from speakcli.engines.xtts import XttsEngine
    from speakcli.testing.tiny_xtts import load_coqui_xtts

    def decode(path: str) -> tuple[torch.Tensor, int]:
        # torchaudio.load decodes through torchcodec, which needs FFmpeg's libraries; a 16-bit WAV decodes to the
        # same floats through libsndfile. Only the decoder is swapped: the rest of coqui's load_audio runs.
        data, rate = sf.read(path, dtype="float32", always_2d=True)
        return torch.from_numpy(data.T.copy()), rate

    monkeypatch.setattr(torchaudio, "load", decode)

    clips = (
        write_clip(tmp_path / "a.wav", voiced(3.0, 22050, f0=120, seed=1), 22050),
        write_clip(tmp_path / "b.wav", voiced(4.0, 22050, f0=210, seed=2), 22050),
        write_clip(tmp_path / "c.wav", voiced(2.5, 22050, f0=160, seed=3), 22050),
    )
    engine = XttsEngine(tiny_xtts_dir, device="cpu")
    latent, embedding = engine.compute_latents(clips)
    p = engine._latent_params
    with torch.inference_mode():
        want_latent, want_embedding = load_coqui_xtts(tiny_xtts_dir).get_conditioning_latents(
            [str(c) for c in clips],
            max_ref_length=p["max_ref_len"],
            gpt_cond_len=p["gpt_cond_len"],
            gpt_cond_chunk_len=p["gpt_cond_chunk_len"],
            sound_norm_refs=p["sound_norm_refs"],
        )
    assert latent.shape == tuple(want_latent.shape) and embedding.shape == tuple(want_embedding.shape)
    np.testing.assert_allclose(latent, want_latent.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embedding, want_embedding.numpy(), rtol=1e-5, atol=1e-6)
    first_only = engine.compute_latents(clips[:1])  # the test can tell: one clip alone gives other latents
    assert not np.allclose(first_only[0], latent) and not np.allclose(first_only[1], embedding)


def test_long_text_reaches_xtts_in_pieces_under_the_limit(tiny_xtts_dir: Path) -> None:
    from speakcli.engines.xtts import XttsEngine

    seen: list[str] = []

    class Spy(XttsEngine):
        def synthesize(self, text, voice, options):  # type: ignore[no-untyped-def]
            seen.append(text)
            yield np.zeros(10, np.float32)

    text = " ".join(["This clause, which is long, keeps going on and on"] * 20) + ". Short one."
    list(utterance(Spy(tiny_xtts_dir, "cpu"), text, None, SynthesisOptions(language="en", pause=0)))
    assert len(seen) > 1 and all(len(s) <= 250 for s in seen)
    assert " ".join(seen).split() == text.split()


def test_number_heavy_text_is_split_under_the_token_limit(tiny_xtts_dir: Path) -> None:
    from speakcli.engines.xtts import MAX_TEXT_TOKENS, XttsEngine

    engine = XttsEngine(tiny_xtts_dir, device="cpu")
    engine.load()
    text = " ".join(["1234567"] * 30)  # 239 characters, but expands to many words of numbers
    assert len(engine._model.tokenizer.encode(text.lower(), lang="en")) >= MAX_TEXT_TOKENS
    parts = engine._fit(text, "en")
    assert len(parts) > 1 and " ".join(parts) == text
    assert all(len(engine._model.tokenizer.encode(p.lower(), lang="en")) < MAX_TEXT_TOKENS for p in parts)
    voice = Voice(name="joe", clips=(Path(__file__).parents[1] / "voices/joe/reference.wav",))
    audio = list(engine.synthesize(text, voice, SynthesisOptions()))
    assert audio and all(np.all(np.isfinite(c)) for c in audio)


def test_builtin_speakers_from_speakers_xtts_pth(tiny_xtts_dir: Path, tone_wav, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import torch

    from speakcli.engines.xtts import XttsEngine

    model = _copy_model(tiny_xtts_dir, tmp_path / "with-speakers")
    latent, embedding = XttsEngine(tiny_xtts_dir, "cpu").compute_latents((tone_wav(),))
    torch.save(
        {
            "Ana Florence": {
                "gpt_cond_latent": torch.from_numpy(latent),
                "speaker_embedding": torch.from_numpy(embedding),
            }
        },
        model / "speakers_xtts.pth",
    )
    out = tmp_path / "ana.wav"
    ok = run_cli("say", "Hi.", "--model-dir", str(model), "--voice", "Ana Florence", "-o", str(out))
    assert ok.returncode == 0, ok.stderr
    bad = run_cli("say", "Hi.", "--model-dir", str(model), "--voice", "Nobody", "-o", str(tmp_path / "n.wav"))
    assert bad.returncode == ExitStatus.VOICE
    assert b"Ana Florence" in bad.stderr and b"Traceback" not in bad.stderr


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("garbage_weights", b"corrupt or not XTTS v2"),
        ("no_vocab", b"missing vocab.json"),
        ("bad_config", b"config.json is not valid JSON"),
        ("truncated_weights", b"corrupt or not XTTS v2"),
        ("list_config", b"config.json is not an XTTS v2 config (it holds a list"),
        ("null_model_args", b"config.json is not an XTTS v2 config (model_args is not an object"),
        ("no_languages", b"config.json is not an XTTS v2 config (languages is not a list"),
    ],
)
def test_a_damaged_model_folder_is_a_model_error(
    tiny_xtts_dir: Path, tmp_path: Path, damage: str, message: bytes
) -> None:
    model = tmp_path / "damaged"
    shutil.copytree(tiny_xtts_dir, model)
    if damage == "garbage_weights":
        (model / "model.pth").write_bytes(b"not a checkpoint" * 100)
    elif damage == "truncated_weights":
        data = (model / "model.pth").read_bytes()
        (model / "model.pth").write_bytes(data[: len(data) // 2])
    elif damage == "no_vocab":
        (model / "vocab.json").unlink()
    elif damage == "bad_config":
        (model / "config.json").write_text("{ not json")
    elif damage == "list_config":
        (model / "config.json").write_text("[1, 2]")
    else:  # valid JSON, a key missing or of the wrong type
        config = json.loads((model / "config.json").read_text())
        if damage == "no_languages":
            del config["languages"]
        else:
            config["model_args"] = None
        (model / "config.json").write_text(json.dumps(config))
    out = tmp_path / "x.wav"
    result = run_cli("say", "Hi.", "-q", "--model-dir", str(model), "-o", str(out))
    assert result.returncode == ExitStatus.MODEL
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_unknown_language_lists_the_models_languages(tiny_xtts_dir: Path) -> None:
    result = run_cli("say", "Hi.", "--model-dir", str(tiny_xtts_dir), "--language", "xx", "-o", "x.wav")
    assert result.returncode == ExitStatus.USAGE
    assert b"language 'xx' is not supported by the xtts engine" in result.stderr and b"de" in result.stderr


def test_a_service_loads_its_engine_once_for_every_operation(
    tiny_xtts_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speakcli.engines.xtts import XttsEngine

    loads: list[int] = []
    real_load = XttsEngine.load

    def counting_load(self: XttsEngine) -> None:
        if self._model is None:  # load() is idempotent; count the loads that build the model
            loads.append(1)
        real_load(self)

    monkeypatch.setattr(XttsEngine, "load", counting_load)
    settings = load_settings({"model_dir": tiny_xtts_dir, "device": "cpu"})
    with SpeechService(settings) as service:
        list(service.speak("One.", service.voice(), service.options()))
        model = service.engine._model  # type: ignore[attr-defined]
        list(service.speak("Two.", service.voice(), service.options(stream=False)))
        service.precompute()
        assert service.engine._model is model  # type: ignore[attr-defined]
    assert loads == [1]
    assert not service.worker.alive  # closing the service joined its worker


def test_cuda_without_a_gpu_is_a_clear_error(tiny_xtts_dir: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    result = run_cli("say", "Hi.", "--model-dir", str(tiny_xtts_dir), "--device", "cuda", "-o", "x.wav")
    assert result.returncode == ExitStatus.MODEL
    assert b"CUDA is not available here; use --device cpu" in result.stderr


@pytest.mark.gpu
def test_tiny_model_runs_on_cuda(tiny_xtts_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "gpu.wav"
    result = run_cli("say", "Hi.", "--model-dir", str(tiny_xtts_dir), "--device", "cuda", "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert read(out)[1] == 24000


def test_download_offline_fails_in_one_line() -> None:
    result = run_cli("download", env={"COQUI_TOS_AGREED": "1", "HF_HUB_OFFLINE": "1"}, timeout=120)
    assert result.returncode == ExitStatus.MODEL
    assert b"could not download XTTS v2" in result.stderr
    assert b"Traceback" not in result.stderr


def test_info_json_reports_the_model_and_engine(tiny_xtts_dir: Path) -> None:
    result = run_cli("info", "--json", "--model-dir", str(tiny_xtts_dir))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["engine"]["name"] == "xtts"
    assert report["xtts_model"]["path"] == str(tiny_xtts_dir)
    assert report["packages"]["coqui-tts"]


def test_choosing_the_engine_by_auto_or_by_name_gives_the_same_spec(tiny_xtts_dir: Path) -> None:
    auto = choose_engine(load_settings({"model_dir": tiny_xtts_dir}))
    explicit = choose_engine(load_settings({"model_dir": tiny_xtts_dir, "engine": "xtts"}))
    assert auto == explicit and hash(auto) == hash(explicit)


def test_streaming_yields_audio_before_synthesis_ends_and_matches_in_length(tiny_xtts_dir: Path) -> None:
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(tiny_xtts_dir, device="cpu")
    engine.load()
    voice = Voice(name="joe", clips=(Path(__file__).parents[1] / "voices/joe/reference.wav",))
    # Count the GPT's codes: streaming decodes each chunk of them as it comes.
    made: list[int] = []
    step = engine._gpt.step

    def counting(sequences: Any) -> Any:
        made.append(1)
        return step(sequences)

    engine._gpt.step = counting
    try:
        made_at_chunk, chunks = [], []
        for chunk in engine.synthesize("Hello there.", voice, SynthesisOptions(stream=True)):
            made_at_chunk.append(len(made))
            chunks.append(chunk)
        made_in_total = len(made)
    finally:
        engine._gpt.step = step
    # The first chunk reached the consumer before the last piece of audio was made, not after all of it.
    assert len(chunks) >= 2 and made_at_chunk[0] < made_in_total
    whole = list(engine.synthesize("Hello there.", voice, SynthesisOptions(stream=False)))
    assert len(whole) == 1
    # Random weights never stop early, so both runs generate the cap: the same number of samples.
    assert sum(map(len, chunks)) == len(whole[0])


@pytest.mark.parametrize(
    ("language", "text"), [("zh", "你好，世界。今天很好。"), ("ja", "こんにちは、世界。"), ("ko", "안녕하세요, 세계.")]
)
def test_the_tiny_model_speaks_languages_that_need_their_own_text_tools(
    tiny_xtts_dir: Path, language: str, text: str
) -> None:
    with SpeechService(load_settings({"model_dir": tiny_xtts_dir, "device": "cpu"})) as service:
        audio = list(service.speak(text, service.voice(), service.options(language=language, stream=False)))
    assert (
        audio and all(np.isfinite(c).all() for c in audio) and sum(map(len, audio)) > 1024
    )  # random weights: any length, but audio


@pytest.mark.parametrize(
    ("language", "text", "package"), [("zh", "你好。", "pypinyin"), ("ja", "こんにちは。", "cutlet")]
)
def test_a_missing_language_package_is_a_model_error_naming_it(
    tiny_xtts_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
    language: str,
    text: str,
    package: str,
) -> None:
    from speakcli.cli import main

    monkeypatch.setitem(sys.modules, package, None)  # import fails as if it were not installed
    code = main(["say", text, "-l", language, "-q", "--model-dir", str(tiny_xtts_dir), "-o", str(tmp_path / "x.wav")])
    err = capfd.readouterr().err
    assert code == ExitStatus.MODEL, err
    assert f"needs the Python package '{package}' for language '{language}'" in err and "pip install" in err
    assert "Traceback" not in err and not (tmp_path / "x.wav").exists()


def test_latents_are_computed_once_across_say_batch_and_watch(
    tiny_xtts_dir: Path, tmp_path: Path, voices_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from speakcli.cli import main
    from speakcli.watch import EventLog, WatchDaemon, WatchOptions

    ann = voices_dir / "ann"
    ann.mkdir(parents=True)
    write_clip(ann / "ref.wav", tone(3.0, 22050, freq=120, amplitude=0.3), 22050)
    # Counted on coqui's class: every command below opens its own service (as each `speakcli` process does),
    # so only the latent cache (in memory within a service, on disk across them) can keep this at one.
    from TTS.tts.models.xtts import Xtts

    computed: list[int] = []
    real = Xtts.get_gpt_cond_latents

    def counting(self: Any, *args: Any, **kwargs: Any) -> Any:
        computed.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Xtts, "get_gpt_cond_latents", counting)
    model = ["--model-dir", str(tiny_xtts_dir), "-q"]
    for i in range(2):
        assert main(["say", f"Line {i}.", "--voice", "ann", "-o", f"say{i}.wav", *model]) == 0
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"text": "Row {i}.", "voice": "ann"}}\n' for i in range(2)))
    assert main(["batch", "rows.jsonl", "-o", "batch", *model]) == 0
    # watch: its daemon in this process, speaking through the shared worker as `speakcli watch` does.
    (tmp_path / "chat.txt").write_text("One.\nTwo.\n")
    log, done, spoken = EventLog(None), threading.Event(), []

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] in ("synthesized", "skipped"):
            spoken.append(event["event"])
            if len(spoken) == 2:
                done.set()

    log.listeners.append(on_event)
    with SpeechService(load_settings({"model_dir": tiny_xtts_dir})) as service:
        voice, opts = service.voice("ann"), service.options(stream=False)
        options = WatchOptions(from_start=True, poll_interval=0.2, pause=0.0, output_dir=tmp_path / "watch")
        daemon = WatchDaemon(
            tmp_path / "chat.txt",
            lambda text, line: service.speak(text, voice, opts),
            service.sample_rate,
            options,
            events=log,
        )
        daemon.start()
        try:
            assert done.wait(120), spoken
        finally:
            daemon.stop()
            assert daemon.join(30)
    assert spoken == ["synthesized", "synthesized"]
    assert len(computed) == 1
