"""When the watch daemon's threads let go of their work: a stop (finish the line in progress) or a halt (now)."""

from __future__ import annotations

import threading
import time

from speakcli.watch.options import WatchOptions

STUCK_AFTER = 5.0  # seconds past the grace after which a thread still running is taken as stuck in the system


class StopControl:
    """The stop policy: a stop ends reading and lets the line in progress finish (with `drain`, everything queued);
    a halt cuts it now. A stop still running `stop_grace` seconds later is to be cut (see `past_grace`)."""

    def __init__(self, options: WatchOptions) -> None:
        self.opts = options  # read when asked: drain and stop_grace as they are then
        self.requested = threading.Event()  # stop reading; finish the line in progress
        self.halted = threading.Event()  # stop now: a failed thread, or a stop past its grace
        self.requested_at: float | None = None

    def request(self) -> None:
        if self.requested_at is None:
            self.requested_at = time.monotonic()
        self.requested.set()

    def halt(self) -> None:
        self.request()
        self.halted.set()

    def letting_go(self) -> bool:
        """Whether the consumer and player should let go of their line now."""
        return self.halted.is_set() or (self.requested.is_set() and not self.opts.drain)

    def past_grace(self) -> bool:
        """A stop without `drain`, not halted yet, still running `stop_grace` seconds after it was asked for."""
        at = self.requested_at
        return (
            at is not None
            and not self.opts.drain
            and not self.halted.is_set()
            and time.monotonic() - at > self.opts.stop_grace
        )

    def stuck(self) -> bool:
        """Whether a thread still running now is stuck in the system (a hung disk), well after the output was cut."""
        at = self.requested_at
        return at is not None and not self.opts.drain and time.monotonic() - at >= self.opts.stop_grace + STUCK_AFTER
