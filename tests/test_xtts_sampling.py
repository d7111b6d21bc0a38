"""XTTS's sampling settings reach the model: top-k 1 is greedy (every seed says the same), the defaults are coqui's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speakcli.engines.base import SynthesisOptions, Voice

pytestmark = [pytest.mark.xtts, pytest.mark.slow]

JOE = Path(__file__).parents[1] / "voices/joe/reference.wav"
TEXT = "the quick brown fox jumps over the lazy dog"


@pytest.fixture(scope="module")
def engine(tiny_xtts_dir: Path) -> Any:
    from speakcli.engines.xtts import XttsEngine

    engine = XttsEngine(tiny_xtts_dir, device="cpu", precision="int8")
    engine.load()
    return engine


def _audio(engine: Any, **options: Any) -> np.ndarray:
    return np.concatenate(list(engine.synthesize(TEXT, Voice(name="joe", clips=(JOE,)), SynthesisOptions(**options))))


def test_top_k_1_samples_greedily_so_two_seeds_say_the_same(engine: Any) -> None:
    # With coqui's top-k (50) two seeds sample different codes: the seed matters, so the next check can fail.
    assert not np.array_equal(_audio(engine, seed=1), _audio(engine, seed=2))
    greedy = _audio(engine, seed=1, top_k=1)
    assert np.array_equal(greedy, _audio(engine, seed=2, top_k=1))
    assert np.array_equal(greedy, _audio(engine, seed=3, top_k=1, temperature=1.5))  # one candidate: no choice


def test_unset_sampling_is_coquis_defaults_and_each_setting_changes_the_codes(engine: Any) -> None:
    from speakcli.engines.xtts_gpt import Sampling
    from speakcli.engines.xtts_sentence import sampling

    assert sampling(SynthesisOptions(temperature=0.6)) == Sampling(temperature=0.6)
    given = sampling(SynthesisOptions(top_k=3, top_p=0.5, repetition_penalty=2.0))
    assert (given.top_k, given.top_p, given.repetition_penalty) == (3, 0.5, 2.0)
    base = _audio(engine, seed=7)
    assert np.array_equal(base, _audio(engine, seed=7, top_k=50, top_p=0.85, repetition_penalty=10.0))
    assert not np.array_equal(base, _audio(engine, seed=7, top_p=0.2))
    # The tiny model's logits are too flat for the penalty to change a code: check what its sequence applies.
    voice = Voice(name="joe", clips=(JOE,))
    penalties = [
        [
            p.penalty
            for p in engine.begin(TEXT, voice, SynthesisOptions(**o)).sequence.processors
            if hasattr(p, "penalty")
        ]
        for o in ({}, {"repetition_penalty": 2.5}, {"repetition_penalty": 1.0})
    ]
    assert penalties == [[10.0], [2.5], []]  # 1.0 is no penalty: coqui's processor is left out
