"""XTTS sentences stepped together: each gets exactly what it gets alone, and the worker really batches them."""

from __future__ import annotations

import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakcli.engines.base import SynthesisOptions, Voice
from speakcli.scheduling import Priority
from speakcli.service import SpeechService
from speakcli.settings import load_settings

pytestmark = [pytest.mark.xtts, pytest.mark.slow]

JOE = Path(__file__).parents[1] / "voices/joe/reference.wav"
TEXTS = ["hello there", "hello there, how are you today, my friend", "the quick brown fox jumps"]
JOINS = [0, 3, 7]  # the step at which each sequence joins the batch: different prompts, joining and leaving apart
SEEDS = [11, 22, 33]


def _engine(folder: Path, precision: str) -> Any:
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(folder, device="cpu", precision=precision)
    engine.load()
    return engine


@pytest.fixture(scope="module", params=["int8", "fp32"])
def engine(request: pytest.FixtureRequest, tiny_xtts_dir: Path) -> Any:
    return _engine(tiny_xtts_dir, request.param)


def _inputs(engine: Any) -> tuple[Any, list[Any]]:
    import torch

    latent = torch.from_numpy(engine.compute_latents((JOE,))[0])
    tokens = [torch.IntTensor(engine._model.tokenizer.encode(t, lang="en")).unsqueeze(0) for t in TEXTS]
    return latent, tokens


def _same(precision: str, got: Any, want: Any) -> None:
    """int8 batches bit for bit; the float precisions to rounding (their kernels round differently per row count)."""
    import torch

    if precision == "int8":
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_sequences_stepped_together_get_the_codes_and_latents_they_get_alone(engine: Any) -> None:
    import torch

    from speakcli.engines.xtts_gpt import Sampling

    gpt = engine._gpt
    latent, tokens = _inputs(engine)
    with torch.inference_mode():
        alone = [
            list(gpt.generate(latent, t, Sampling(), torch.Generator().manual_seed(s)))
            for t, s in zip(tokens, SEEDS, strict=True)
        ]
        together: list[list[tuple[int, Any]]] = [[] for _ in TEXTS]
        live: list[tuple[int, Any]] = []
        step = 0
        while step <= max(JOINS) or live:
            for i, join in enumerate(JOINS):
                if join == step:
                    live.append(
                        (i, gpt.sequence(latent, tokens[i], Sampling(), torch.Generator().manual_seed(SEEDS[i])))
                    )
            if live:
                for (i, _), got in zip(live, gpt.step([seq for _, seq in live]), strict=True):
                    together[i].append(got)
            live = [(i, seq) for i, seq in live if not seq.done]
            step += 1
    assert len({len(p) for p in (tokens[0][0], tokens[1][0], tokens[2][0])}) == 3  # prompts of different lengths
    for got, want in zip(together, alone, strict=True):
        assert [code for code, _ in got] == [code for code, _ in want]
        _same(engine.precision, torch.stack([h for _, h in got]), torch.stack([h for _, h in want]))


# Long enough that torch's CPU attention splits the prompt's rows into other blocks than a short one's.
LONG_TEXT = "the quick brown fox jumps over the lazy dog, " * 12


def test_a_voices_conditioning_is_computed_once_and_gives_what_the_whole_prompt_gives(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from speakcli.engines.xtts_gpt import GptSequence, Sampling

    gpt = engine._gpt
    gpt._prefixes.clear()
    joe, tokens = _inputs(engine)
    long = torch.IntTensor(engine._model.tokenizer.encode(LONG_TEXT, lang="en")).unsqueeze(0)
    assert long.shape[1] > 200
    other = torch.randn(joe.shape, generator=torch.Generator().manual_seed(7))
    computed: list[int] = []  # rows each pass through the blocks computed
    real_run = gpt._run

    def counted(x: Any, spans: Any) -> Any:
        computed.append(x.shape[0])
        return real_run(x, spans)

    monkeypatch.setattr(gpt, "_run", counted)

    def codes_and_latents(seq: Any) -> tuple[list[int], Any]:
        steps = []
        while not seq.done:
            steps += gpt.step([seq])
        return [code for code, _ in steps], torch.stack([h for _, h in steps])

    with torch.inference_mode():
        for n, (latent, text) in enumerate([(joe, tokens[1]), (other, tokens[1]), (joe, long), (other, tokens[1])]):
            computed.clear()
            cached = gpt.sequence(latent, text, Sampling(), torch.Generator().manual_seed(5))
            # the second time a voice is used, its conditioning rows are not computed again
            assert computed == ([] if n >= 2 else [joe.shape[1]])
            assert cached.pending.shape[0] == text.shape[1] + 3  # start and stop text, start audio
            x = torch.cat([gpt.prompt(latent, text), cached.pending[-1:]])
            whole = GptSequence(gpt, x, Sampling(), torch.Generator().manual_seed(5), gpt._caches(0))
            got, want = codes_and_latents(cached), codes_and_latents(whole)
            assert got[0] == want[0]
            _same(engine.precision, got[1], want[1])


def test_the_conditioning_cache_keeps_the_latest_voices_within_its_bytes(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from speakcli.engines import xtts_gpt
    from speakcli.engines.xtts_gpt import Sampling

    gpt = engine._gpt
    joe, tokens = _inputs(engine)
    voices = [torch.randn(joe.shape, generator=torch.Generator().manual_seed(seed)) for seed in range(4)]
    with torch.inference_mode():
        size = sum(c.numel() * c.element_size() for c in gpt._prefix(joe))
    monkeypatch.setattr(xtts_gpt, "PREFIX_BYTES", 3 * size)  # room for 3 voices
    gpt._prefixes.clear()
    computed: list[int] = []
    real_run = gpt._run

    def counted(x: Any, spans: Any) -> Any:
        computed.append(x.shape[0])
        return real_run(x, spans)

    monkeypatch.setattr(gpt, "_run", counted)

    def rows_computed(voice: int) -> int:
        computed.clear()
        with torch.inference_mode():
            gpt.sequence(voices[voice], tokens[0], Sampling())
        return sum(computed)

    rows = joe.shape[1]  # the conditioning latents
    assert [rows_computed(v) for v in (0, 1, 2)] == [rows, rows, rows]
    assert rows_computed(0) == 0  # kept, and now the latest used
    assert rows_computed(3) == rows  # a fourth voice: the least recently used (1) goes
    assert rows_computed(1) == rows  # computed again (and 2 goes)
    assert rows_computed(0) == 0
    assert len(gpt._prefixes) == 3


def test_sentences_stepped_together_make_the_audio_each_makes_alone(engine: Any) -> None:
    voice = Voice(name="joe", clips=(JOE,))
    opts = [SynthesisOptions(seed=s, stream=stream) for s, stream in zip(SEEDS, (True, False, True), strict=True)]
    alone = [np.concatenate(list(engine.synthesize(t, voice, o))) for t, o in zip(TEXTS, opts, strict=True)]
    audio: list[list[np.ndarray]] = [[] for _ in TEXTS]
    live: list[tuple[int, Any]] = []
    step = 0
    while step <= max(JOINS) or live:
        live += [(i, engine.begin(TEXTS[i], voice, opts[i])) for i, join in enumerate(JOINS) if join == step]
        if live:
            engine.step([s for _, s in live])
        for i, sentence in live:
            audio[i] += sentence.take()
            assert sentence.error is None
        live = [(i, s) for i, s in live if not s.done]
        step += 1
    for got, want in zip(audio, alone, strict=True):
        joined = np.concatenate(got)
        assert len(joined) == len(want)
        if engine.precision == "int8":
            assert np.array_equal(joined, want)
        else:
            np.testing.assert_allclose(joined, want, atol=1e-4)


@pytest.fixture(scope="module")
def int8_service(tiny_xtts_dir: Path) -> Any:
    settings = load_settings({"engine": "xtts", "model_dir": tiny_xtts_dir, "device": "cpu", "precision": "int8"})
    service = SpeechService(settings)
    service.load()
    sizes: list[int] = []
    real_step = service.engine.step

    def counted(sentences: Any) -> None:
        sizes.append(len(sentences))
        real_step(sentences)

    service.engine.step = counted  # type: ignore[method-assign]
    service.step_sizes = sizes  # type: ignore[attr-defined]
    yield service
    service.close()


def test_concurrent_requests_are_stepped_together_and_each_gets_its_own_audio(int8_service: Any) -> None:
    """Eight clients at once through the service's worker, one of them cancelled part way: each other client's
    audio is the same request's audio made alone, and the worker stepped several sentences at a time."""
    service = int8_service
    voice = service.voice(str(JOE))
    texts = [f"Client {n} asks for this. And then for that." for n in range(8)]
    opts = [replace(service.options(), seed=100 + n) for n in range(8)]
    alone = [np.concatenate(list(service.speak(t, voice, o))) for t, o in zip(texts, opts, strict=True)]
    service.step_sizes.clear()
    results: dict[int, np.ndarray] = {}
    start = threading.Barrier(8)

    def client(n: int) -> None:
        start.wait(30)
        job = service.speak(texts[n], voice, opts[n])
        chunks = []
        for chunk in job:
            chunks.append(chunk)
            if n == 3:
                job.cancel()
                break
        results[n] = np.concatenate(chunks)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert max(service.step_sizes) > 1
    for n in range(8):
        if n != 3:
            assert np.array_equal(results[n], alone[n]), n
    assert len(results[3]) < len(alone[3])


def test_a_short_request_gets_audio_before_a_long_one_ends(int8_service: Any) -> None:
    service = int8_service
    voice = service.voice(str(JOE))
    long = service.speak(" ".join(f"This is long sentence {i}." for i in range(12)), voice, service.options())
    chunks = iter(long)
    assert len(next(chunks)) > 0
    short = service.speak("Short.", voice, service.options(), priority=Priority.INTERACTIVE)
    assert len(np.concatenate(list(short))) > 0
    assert not long.done.is_set()  # the long one still had sentences to make
    long.cancel()
    assert long.done.wait(60)
    del chunks


def test_a_batch_hands_its_items_to_the_worker_together_and_each_file_is_the_item_alone(
    int8_service: Any, tmp_path: Path
) -> None:
    import soundfile as sf

    from speakcli.batch import Item, run_batch

    service = int8_service
    unseeded = service.settings
    service.settings = replace(unseeded, seed=5)  # the same seed alone and in the batch
    texts = [f"Line {i} of the book." for i in range(4)]
    alone = [np.concatenate(list(service.speak(t, service.voice(), service.options(stream=False)))) for t in texts]
    service.step_sizes.clear()
    try:
        results, summary = run_batch(service, [Item(i, f"b:{i}", t) for i, t in enumerate(texts, 1)], tmp_path)
    finally:
        service.settings = unseeded
    assert summary.ok == 4 and max(service.step_sizes) == 4
    for result, want in zip(results, alone, strict=True):
        audio, rate = sf.read(str(tmp_path / str(result.output)), dtype="int16")
        assert rate == service.sample_rate
        assert np.array_equal(audio, np.round(np.clip(want, -1, 1) * 32767).astype(np.int16))


def test_a_step_only_generates_and_each_sentence_decodes_when_its_audio_is_taken(
    engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two sentences stepped together: their chunks fall due on the same step, and taking the first one's audio
    decodes that one alone, so a worker hands it on before the second one's decoding starts."""
    from speakcli.engines.xtts_stream import StreamDecoder

    voice = Voice(name="joe", clips=(JOE,))
    sentences = {
        name: engine.begin("hello there", voice, SynthesisOptions(seed=seed)) for name, seed in (("a", 1), ("b", 2))
    }
    owner = {id(s.decoder): name for name, s in sentences.items()}
    events: list[str] = []
    real = StreamDecoder.push

    def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        events.append(f"decode {owner[id(self)]}")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StreamDecoder, "push", push)
    while not all(s.done for s in sentences.values()):
        events.append("step")
        engine.step([s for s in sentences.values() if not s.done])
        for name, sentence in sentences.items():
            events.append(f"take {name}")
            sentence.take()
            assert sentence.error is None
    for i, event in enumerate(events):
        if event.startswith("decode"):
            assert events[i - 1] == f"take {event[-1]}", events[: i + 1]  # in its own take, nowhere else
    assert "step take a decode a take b decode b" in " ".join(events)  # due together, decoded one at a time


def test_the_worker_hands_one_requests_chunk_on_before_it_decodes_the_next_ones(
    int8_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests that start on the same step have their first chunks due together: when the second one's chunk
    is decoded, the first one's has already been handed to its job (order of events, not time)."""
    from speakcli.engines.xtts_stream import StreamDecoder
    from speakcli.scheduling.jobs import CallTask

    service = int8_service
    voice = service.voice(str(JOE))
    options = replace(service.options(), seed=3, stream=True)
    jobs: list[Any] = []
    seen: list[tuple[int, ...]] = []  # each job's items handed on, at each decoder call
    real = StreamDecoder.push

    def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(tuple(job.items for job in jobs))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StreamDecoder, "push", push)
    service.step_sizes.clear()
    held = threading.Event()
    blocker = service.worker.submit(CallTask(lambda engine: held.wait(30)))  # both are admitted on one step
    jobs.extend(service.speak("Both say the same thing.", voice, options) for _ in range(2))
    held.set()
    blocker.result()
    audio = [np.concatenate(list(job)) for job in jobs]
    assert np.array_equal(audio[0], audio[1])
    assert 2 in service.step_sizes  # admitted together while the call held the worker: stepped together
    first, second = seen[:2]
    assert first == (0, 0) and second[0] > 0 and second[1] == 0, seen


def test_a_sentence_whose_decoding_fails_fails_alone(engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding runs when the audio is taken: a decoder error there fails that sentence with a synthesis error,
    and the sentence stepped beside it still makes exactly its audio alone."""
    from speakcli.engines.xtts_stream import StreamDecoder
    from speakcli.errors import SynthesisError

    voice = Voice(name="joe", clips=(JOE,))
    options = SynthesisOptions(seed=4)
    alone = np.concatenate(list(engine.synthesize(TEXTS[1], voice, options)))
    broken, fine = engine.begin(TEXTS[0], voice, options), engine.begin(TEXTS[1], voice, options)
    real = StreamDecoder.push

    def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        if self is broken.decoder:
            raise RuntimeError("decoder broke")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StreamDecoder, "push", push)
    audio: list[np.ndarray] = []
    while not (fine.done and broken.done):
        engine.step([s for s in (broken, fine) if not s.done])
        broken.take()
        audio += fine.take()
    assert broken.done and isinstance(broken.error, SynthesisError) and "decoder broke" in str(broken.error)
    assert fine.error is None
    if engine.precision == "int8":
        assert np.array_equal(np.concatenate(audio), alone)
    else:
        np.testing.assert_allclose(np.concatenate(audio), alone, atol=1e-4)


def test_a_streamed_sentences_first_chunk_reaches_its_job_before_the_next_chunk_is_decoded(
    int8_service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Time to first audio is one chunk's generation and decoding: the first chunk is not held back until the
    second shows it was not the sentence's last (only its fade-out's few ms are)."""
    from speakcli.engines.xtts_stream import StreamDecoder
    from speakcli.scheduling.jobs import CallTask

    service = int8_service
    job: Any = None
    seen: list[int] = []  # the job's items handed on, at each decoder call
    real = StreamDecoder.push

    def push(self: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(job.items if job is not None else -1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(StreamDecoder, "push", push)
    held = threading.Event()
    blocker = service.worker.submit(CallTask(lambda engine: held.wait(30)))  # no decoding before `job` is set
    job = service.speak("One sentence, streamed.", service.voice(str(JOE)), replace(service.options(), stream=True))
    held.set()
    blocker.result()
    assert len(np.concatenate(list(job))) > 0
    assert len(seen) >= 2 and seen[0] == 0 and seen[1] >= 1, seen
