"""One configurable fake engine: instant or slow, gated, failing on trigger words, recording every call."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

from speakcli.engines.base import Capabilities, SynthesisOptions, Voice
from speakcli.errors import SynthesisError

# What a line containing the key raises: a SpeakError, and a plain error as a library raises on bad input.
DEFAULT_FAILURES: Mapping[str, Callable[[], BaseException]] = {
    "FAIL": lambda: SynthesisError("this line cannot be spoken"),
    "CRASH": lambda: RuntimeError("the engine blew up"),
}


class FakeEngine:
    """An Engine whose 'audio' is one sample per character, so tests can tell lines apart by length.

    It records the texts it was asked for (`texts`) and those it finished (`spoken`), the threads that called it,
    how often it loaded, and how often a call began while another was running (`overlaps`). `started` is set once
    a call begins, and `begun` released at each; while `gate` is clear, calls wait for it (up to `gate_timeout`), to
    hold the engine busy. With `steps`, each call first takes one permit of it: a test that releases N permits lets
    the engine make exactly N pieces. `failures` maps a trigger word to a factory of what a text containing it raises.
    """

    capabilities = Capabilities()

    def __init__(
        self,
        delay: float = 0.0,
        *,
        name: str = "fake",
        sample_rate: int = 1000,
        max_chars: int = 10_000,
        level: float = 0.5,
        failures: Mapping[str, Callable[[], BaseException]] = DEFAULT_FAILURES,
        gate_timeout: float = 30.0,
        steps: threading.Semaphore | None = None,
    ) -> None:
        self.name = name
        self.sample_rate = sample_rate
        self.delay = delay
        self.level = level
        self.failures = dict(failures)
        self.gate_timeout = gate_timeout
        self._max_chars = max_chars
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Event()
        self.begun = threading.Semaphore(0)
        self.steps = steps
        self.loads = 0
        self.threads: set[int] = set()
        self.texts: list[str] = []
        self.spoken: list[str] = []
        self.overlaps = 0
        self._busy = threading.Lock()

    def languages(self) -> list[str]:
        return ["en"]

    def max_chars(self, language: str) -> int:
        return self._max_chars

    def load(self) -> None:
        self.threads.add(threading.get_ident())
        self.loads += 1

    def check_voice(self, voice: Voice | None) -> None:
        return None

    def synthesize(self, text: str, voice: Voice | None, options: SynthesisOptions) -> Iterator[np.ndarray]:
        if not self._busy.acquire(blocking=False):
            self.overlaps += 1
            self._busy.acquire()
        try:
            self.threads.add(threading.get_ident())
            self.texts.append(text)
            self.started.set()
            self.begun.release()
            self.gate.wait(self.gate_timeout)
            if self.steps is not None:
                self.steps.acquire(timeout=self.gate_timeout)
            for trigger, make_error in self.failures.items():
                if trigger in text:
                    raise make_error()
            time.sleep(self.delay)  # stands for the engine's work: not used to order anything
            self.spoken.append(text)
            yield np.full(max(1, len(text)), self.level, np.float32)
        finally:
            self._busy.release()

    def describe(self) -> dict[str, Any]:
        return {}
