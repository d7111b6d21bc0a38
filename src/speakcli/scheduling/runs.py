"""A job in the worker's hands: its pieces, the sentence in progress, and the audio it hands its consumer in order."""

from __future__ import annotations

import time
from typing import Any

from speakcli.audio.signal import Fader
from speakcli.engines.base import BatchingEngine, Engine, Sentence
from speakcli.errors import SpeakError, SynthesisError
from speakcli.heap import release_free_memory
from speakcli.scheduling.jobs import CallTask, Job, Priority, SpeechTask
from speakcli.speech import Piece, script, sentence_options, silence


def engine_failure(exc: Exception) -> SpeakError:
    """An error an engine raised as it is reported: a SpeakError as it is, anything else as a synthesis failure
    (a library's own error on odd text is this text's failure, not a bug of speakcli's)."""
    if isinstance(exc, SpeakError):
        return exc
    failure = SynthesisError(f"the engine failed: {type(exc).__name__}: {' '.join(str(exc).split())}")
    failure.__cause__ = exc
    return failure


class Run:
    """What every job in the worker's hands has: its job, its class, its place in arrival order, and its clock."""

    def __init__(self, job: Job[Any], order: int) -> None:
        self.job = job
        self.order = order
        self.priority: Priority = job.priority
        self.turns = 0  # steps or sentences it has been given
        self.started_at: float | None = None
        self.finished = False

    def begin(self) -> None:
        if self.started_at is None:
            self.started_at = time.monotonic()
            self.job.started.set()

    def end(self, failure: BaseException | None = None, completed: bool = False) -> None:
        """Finish the job: `completed` when all of it was made, else cut short (with its error, if any);
        idempotent."""
        if self.finished:
            return
        self.finished = True
        self.job.completed = completed and failure is None
        self.close()
        start = self.started_at if self.started_at is not None else time.monotonic()
        self.job.elapsed = time.monotonic() - start
        self.job.finish(failure)

    def emit(self, item: Any) -> None:
        if self.job.first_item_after is None and self.started_at is not None:
            self.job.first_item_after = time.monotonic() - self.started_at
        self.job.items += 1
        self.job.put(item)

    def close(self) -> None:
        """Drop what the run holds in the engine (a sentence's caches)."""


class CallRun(Run):
    """A call on the engine: run whole in one turn; its one item is what the call returned."""

    def __init__(self, job: Job[Any], order: int) -> None:
        super().__init__(job, order)
        assert isinstance(job.task, CallTask)
        self.task: CallTask = job.task

    def turn(self, engine: Engine) -> None:
        self.begin()
        try:
            result = self.task.fn(engine)
        except Exception as exc:
            self.end(exc)  # a call's own errors are its caller's to read as they are
            return
        self.emit(result)
        self.end(completed=True)


class SpeechRun(Run):
    """A speech job stepped through its pieces: one sentence a turn, or, on a batching engine, one step of its
    sentence a turn alongside other jobs' sentences. Each sentence is faded at its ends as `render` does, so the
    audio is the same whichever way it was made."""

    def __init__(self, job: Job[Any], order: int, engine: Engine) -> None:
        super().__init__(job, order)
        assert isinstance(job.task, SpeechTask)
        self.task: SpeechTask = job.task
        self.engine = engine
        self.pieces: list[Piece] | None = None
        self.next_piece = 0
        self.sentences_done = 0
        self.total = 0
        self.sentence: Sentence | None = None  # on a batching engine: the sentence being stepped
        self.fader = Fader(engine.sample_rate)

    @property
    def has_audio(self) -> bool:
        """Whether it has handed out audio yet: a run that has not is served first."""
        return self.job.items > 0

    def prepare(self) -> None:
        """Split its plan into pieces, on the worker (a long text takes a while): once, on its first turn."""
        if self.pieces is not None:
            return
        self.begin()
        self.pieces = script(self.engine, self.task.plan, self.task.options)
        self.total = sum(p.text is not None for p in self.pieces)
        self._progress()

    def _progress(self) -> None:
        self.job.progress = (self.sentences_done, self.total)
        if self.task.on_progress is not None:
            self.task.on_progress(self.sentences_done, self.total)

    def _advance_pauses(self) -> Piece | None:
        """Emit the pauses up to the next sentence; the sentence's piece (taken), or None at the end."""
        assert self.pieces is not None
        while self.next_piece < len(self.pieces):
            piece = self.pieces[self.next_piece]
            self.next_piece += 1
            if piece.text is None:
                self.emit(silence(piece.pause, self.engine.sample_rate))
                continue
            return piece
        return None

    def _options(self, piece: Piece) -> Any:
        return sentence_options(self.task.options, piece, self.sentences_done)

    def _sentence_done(self) -> None:
        for chunk in self.fader.finish():
            self.emit(chunk)
        self.fader = Fader(self.engine.sample_rate)
        self.sentences_done += 1
        self._progress()

    # -- one sentence a turn (any engine) ----------------------------------------------------------------------
    def turn(self) -> None:
        """Make its next sentence (with the pauses before it), streaming its chunks as they come; end the job
        after the last."""
        self.prepare()
        self.turns += 1
        piece = self._advance_pauses()
        if piece is None:
            self.end(completed=True)
            return
        assert piece.text is not None
        for chunk in self.engine.synthesize(piece.text, self.task.voice, self._options(piece)):
            for ready in self.fader.push(chunk):
                self.emit(ready)
            if self.job.cancelled:
                return  # the worker drops it before its next turn
        self._sentence_done()
        if self.next_piece >= len(self.pieces or ()):
            self.end(completed=True)

    # -- a step at a time (batching engines) -------------------------------------------------------------------
    def ready_sentence(self) -> Sentence | None:
        """The sentence to step next, begun if need be; None when the job has nothing left (it is then ended)."""
        self.prepare()
        if self.sentence is None:
            piece = self._advance_pauses()
            if piece is None:
                self.end(completed=True)
                return None
            assert piece.text is not None and isinstance(self.engine, BatchingEngine)
            self.sentence = self.engine.begin(piece.text, self.task.voice, self._options(piece))
        return self.sentence

    def stepped(self) -> None:
        """After a step: hand on the audio it made; when its sentence is over, finish it (or fail the job)."""
        sentence = self.sentence
        assert sentence is not None
        self.turns += 1
        if self.job.cancelled:
            return  # its audio is not wanted: the worker drops it before decoding any (take() does that work)
        for chunk in sentence.take():
            for ready in self.fader.push(chunk):
                self.emit(ready)
        if not sentence.done:
            return
        self.sentence = None
        sentence.close()
        if sentence.error is not None:
            self.end(sentence.error)
            return
        self._sentence_done()
        if self.next_piece >= len(self.pieces or ()):
            self.end(completed=True)

    def close(self) -> None:
        if self.sentence is not None:
            self.sentence.close()
            self.sentence = None
        release_free_memory()  # finished, failed or cancelled: a server must not keep this utterance's peak
