"""One request as a Wyoming connection receives it: a voice, a language and its text, whole or streamed."""

from __future__ import annotations

from dataclasses import dataclass

from speakcli.serving.streamed import StreamedText


@dataclass(eq=False)  # each request is itself, compared and hashed by identity
class Utterance:
    """One `synthesize`, or one `synthesize-start` ... `synthesize-stop`, in the connection's speaking order."""

    voice: str | None
    language: str | None
    streaming: bool
    text: StreamedText

    def fail(self) -> None:
        """An error was sent: drop the rest (a stream is still answered at its stop)."""
        self.text.fail()

    def close(self) -> None:
        """All its text has arrived."""
        self.text.close()
