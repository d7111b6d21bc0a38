"""Text to speech pieces: a plan split into sentences an engine takes, pauses between, and the audio they make."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

import numpy as np

from speakcli.audio import faded
from speakcli.engines.base import Engine, SynthesisOptions, Voice
from speakcli.errors import EmptyTextError, NothingToSayError, OnlyMarkupError
from speakcli.heap import release_free_memory
from speakcli.scheduling.jobs import ProgressCallback
from speakcli.ssml import Pause, Plan, Span, plain
from speakcli.text import has_speech, split_text


@dataclass(frozen=True)
class Piece:
    """One step of an utterance: a sentence for the engine at `speed`, or `pause` seconds of silence."""

    text: str | None = None
    speed: float = 1.0
    pause: float = 0.0


def script(engine: Engine, plan: Plan, options: SynthesisOptions) -> list[Piece]:
    """The plan as sentences that fit the engine, with `options.pause` between them unless the plan says otherwise.

    Speed is a rate over the whole utterance: every pause, the plan's too, is 1/speed as long. A plan with
    `speakable` has its spans made speakable first (Markdown read aloud, the lexicon).
    Raises EmptyTextError or NothingToSayError when no piece has anything to say.
    """
    pieces: list[Piece] = []
    gap_due = False  # a sentence came last: the next one is preceded by the usual pause
    for part in plan.parts:
        if isinstance(part, Pause):
            if part.seconds > 0:
                pieces.append(Piece(pause=part.seconds / options.speed))
            gap_due = False
            continue
        speed = min(4.0, max(0.25, options.speed * part.rate))
        text = part.text if plan.speakable is None else plan.speakable.text(part.text)
        # A piece with no letter or digit ("...", "!!!") is not said: engines vocalise such pieces as noise.
        for sentence in split_text(text, options.language, engine.max_chars(options.language)):
            if not has_speech(sentence):
                continue
            if gap_due and options.pause > 0:
                pieces.append(Piece(pause=options.gap))
            pieces.append(Piece(sentence, speed))
            gap_due = True
    if not any(p.text is not None for p in pieces):
        check_plan(plan)
        raise OnlyMarkupError()  # words came, but reading the Markdown aloud left none (code, a table, emoji)
    return pieces


def check_plan(plan: Plan, where: str = "the input") -> None:
    """Raise a usage error when no span of the plan has anything to say (cheap: no sentence splitting)."""
    spans = [p.text for p in plan.parts if isinstance(p, Span)]
    if not any(has_speech(t) for t in spans):
        raise NothingToSayError(where) if any(t.strip() for t in spans) else EmptyTextError(where)


def sentence_options(options: SynthesisOptions, piece: Piece, index: int) -> SynthesisOptions:
    """The options for the `index`-th sentence of an utterance: its own speed, and a seed of its own derived from
    the utterance's, so each sentence's randomness is the same however the sentences are scheduled."""
    seed = None if options.seed is None else (options.seed * 1_000_003 + index) % 2**63
    if piece.speed == options.speed and seed == options.seed:
        return options
    return replace(options, speed=piece.speed, seed=seed)


def render(
    engine: Engine,
    pieces: Sequence[Piece],
    voice: Voice | None,
    options: SynthesisOptions,
    on_progress: ProgressCallback | None = None,
) -> Iterator[np.ndarray]:
    """Audio for the pieces, one after another: each sentence faded at its ends, silence for the pauses.

    The synthesis worker makes the same audio a step at a time (`speakcli.scheduling.runs`); this is the plain
    loop, for one caller with the engine to itself.
    """
    total = sum(p.text is not None for p in pieces)
    done = 0
    if on_progress is not None:
        on_progress(0, total)
    try:
        for piece in pieces:
            if piece.text is None:
                yield silence(piece.pause, engine.sample_rate)
                continue
            opts = sentence_options(options, piece, done)
            yield from faded(engine.synthesize(piece.text, voice, opts), engine.sample_rate)
            done += 1
            if on_progress is not None:
                on_progress(done, total)
    finally:
        release_free_memory()  # finished, failed or cancelled: a server must not keep this utterance's peak


def silence(seconds: float, sample_rate: int) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.float32)


def check_speakable(text: str, where: str = "the input") -> None:
    """Raise a usage error for text with nothing to say, before any work is queued."""
    if not text.strip():
        raise EmptyTextError(where)
    if not has_speech(text):
        raise NothingToSayError(where)


def utterance(engine: Engine, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
    """Audio for plain `text`: split to the engine's limit, a short fade at each sentence's ends, pauses between."""
    yield from render(engine, script(engine, plain(text), options), voice, options)
