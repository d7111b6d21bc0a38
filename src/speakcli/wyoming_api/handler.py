"""One Wyoming connection: requests are read while earlier ones are spoken, all through the shared gateway."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import numpy as np
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.error import Error
from wyoming.event import Event
from wyoming.info import Describe, SelectProgram
from wyoming.ping import Ping, Pong
from wyoming.server import AsyncEventHandler
from wyoming.tts import Synthesize, SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped

from speakcli.audio.encode import pcm16
from speakcli.errors import BusyError, SpeakError, UsageError
from speakcli.serving import Gateway, SpeechRequest
from speakcli.serving.aio import AsyncSpeech
from speakcli.serving.streamed import StreamedText
from speakcli.streamtext import TextStream
from speakcli.wyoming_api.events import BadEvent, read_event
from speakcli.wyoming_api.info import PROGRAM, describe
from speakcli.wyoming_api.utterance import Utterance

log = logging.getLogger("speakcli")

CHUNK_SAMPLES = 2048  # samples per audio-chunk event (16-bit mono: 4 KiB)
# A client may stream this many times a request's text limit before it is spoken; it is spoken as it comes.
PENDING_FACTOR = 16
_ANSWERS = "describe, synthesize, synthesize-start, synthesize-chunk, synthesize-stop"


def _text(data: dict[str, Any]) -> str:
    text = data.get("text")
    if not isinstance(text, str):
        raise UsageError('the event\'s data has no text string; send {"text": "..."}')
    return text


def _voice(data: dict[str, Any]) -> tuple[str | None, str | None]:
    """The voice name and language a request asks for ({"voice": {"name", "language", "speaker"}})."""
    voice = data.get("voice")
    if voice is None:
        return None, None
    if not isinstance(voice, dict):
        raise UsageError('voice must be an object such as {"name": "joe"}')
    name, language = voice.get("name"), voice.get("language")
    if not isinstance(name, (str, type(None))) or not isinstance(language, (str, type(None))):
        raise UsageError("voice name and language must be strings")
    return name or None, language or None


class SpeechHandler(AsyncEventHandler):
    """Reads events and answers at once (describe, errors); one speaker task speaks the requests in order.

    Reading never waits for audio, so a client that hangs up is noticed at once and its job is cancelled, and a
    stream's text keeps arriving while its first sentences are spoken.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, gateway: Gateway) -> None:
        super().__init__(reader, writer)
        self.gateway = gateway
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue()
        self._speaker: asyncio.Task[None] | None = None
        self._stream: Utterance | None = None  # the open synthesize-start ... synthesize-stop
        self._unfinished: set[Utterance] = set()  # queued or being spoken
        self._write_lock = asyncio.Lock()
        self.idle = asyncio.Event()  # nothing queued or being spoken
        self.idle.set()

    # -- reading -----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Handle events until the client closes; a malformed event gets an error and the next one is read."""
        self._is_running = True
        try:
            while self._is_running:
                try:
                    event = await read_event(self.reader)
                except BadEvent as exc:
                    await self._error("invalid_event", str(exc))
                    if exc.fatal:
                        break
                    continue
                if event is None or not await self.handle_event(event):
                    break
                # Events already buffered are read without a pause: let the loop serve others between them.
                await asyncio.sleep(0)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away mid-event
        finally:
            await self.disconnect()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        try:
            await self._dispatch(event)
        except SpeakError as exc:
            await self._error(exc.code, str(exc))
        except ConnectionError:
            return False
        except Exception as exc:  # a bug: the client gets an error and the server goes on
            log.error("Wyoming: unexpected error on %s: %s: %s", event.type, type(exc).__name__, exc)
            log.debug("traceback", exc_info=exc)
            await self._error("internal", "the server failed on this event; its log says why")
        return True

    async def _dispatch(self, event: Event) -> None:
        kind, data = event.type, event.data
        if Describe.is_type(kind):
            await self.write_event(await asyncio.to_thread(describe, self.gateway))
        elif Ping.is_type(kind):
            await self.write_event(Pong(text=Ping.from_event(event).text).event())
        elif SelectProgram.is_type(kind):
            if data.get("name") != PROGRAM:
                raise UsageError(f"no program named {data.get('name')!r}; this server has {PROGRAM!r}")
        elif Synthesize.is_type(kind):
            if self._stream is not None:
                return  # Home Assistant repeats a stream's whole text for older servers: it is being spoken
            text = _text(data)
            self.gateway.check_text(text)  # as HTTP does: past --max-text it is refused, not spoken in parts
            self._utterance(*_voice(data), text=text)
        elif SynthesizeStart.is_type(kind):
            if self._stream is not None:
                raise UsageError("a stream is already open; send synthesize-stop first")
            self._utterance(*_voice(data))
        elif SynthesizeChunk.is_type(kind):
            self._open_stream(kind).text.put(_text(data))
        elif SynthesizeStop.is_type(kind):
            self._open_stream(kind).close()
            self._stream = None
        else:
            raise UsageError(f"unknown event type {kind!r}; this server answers {_ANSWERS}", code="unknown_event")

    def _open_stream(self, kind: str) -> Utterance:
        if self._stream is None:
            raise UsageError(f"{kind} without synthesize-start; start a stream first")
        return self._stream

    def _utterance(self, voice: str | None, language: str | None, text: str | None = None) -> Utterance:
        """A new request in the speaking order, whole `text` or (None) a stream; its voice and language are checked
        now, before any text.

        A saved voice named without a language speaks its own (Home Assistant lists it under that language and
        sends only the name).
        """
        most = self.gateway.limits.max_queue
        if len(self._unfinished) >= most:  # they wait here before the gateway's queue: bounded here too
            raise BusyError(f"this connection has {most} requests waiting; send more as their audio comes", 5)
        refused: SpeakError | None = None
        try:
            resolved = self.gateway.voice(voice)
            if voice and language is None and resolved is not None:
                language = resolved.language
            self.gateway.options(SpeechRequest("", voice, language))
        except SpeakError as exc:
            refused = exc
        streaming = text is None
        if text is not None:
            content = StreamedText.whole(text)
        else:
            limit = self.gateway.limits.max_text
            gateway = self.gateway
            stream = TextStream(language or gateway.settings.language, limit, speakable=gateway.speakable)
            content = StreamedText(stream, limit * PENDING_FACTOR)
        utterance = Utterance(voice, language, streaming, content)
        self._queue.put_nowait(utterance)  # queued even when refused: a stream is still answered at its stop
        self._unfinished.add(utterance)
        if streaming:
            self._stream = utterance
        self.idle.clear()
        if self._speaker is None:
            self._speaker = asyncio.create_task(self._speak_all(), name="wyoming speaker")
        if refused is not None:
            utterance.fail()
            if not streaming:
                utterance.close()
            raise refused
        return utterance

    # -- speaking ----------------------------------------------------------------------------------------------
    async def _speak_all(self) -> None:
        while True:
            utterance = await self._queue.get()
            try:
                await self._speak(utterance)
            finally:
                self._unfinished.discard(utterance)
                if self._queue.empty():
                    self.idle.set()

    async def _speak(self, utterance: Utterance) -> None:
        """Its sentences as they become ready, each batch one job on the worker, in one audio-start ... -stop."""
        rate = self.gateway.sample_rate
        started = False
        while True:
            try:
                text = await utterance.text.take(self.gateway.limits.max_text)
            except SpeakError as exc:  # the stream cannot be spoken (it failed)
                await self._error(exc.code, str(exc))
                continue
            if text is None:
                break
            try:
                # A stream's sentences were made speakable as they came (Markdown across pieces needs that).
                request = SpeechRequest(text, utterance.voice, utterance.language, prepared=utterance.streaming)
                speech = AsyncSpeech(self.gateway, request)
                gap = np.zeros(round(self.gateway.options(request).gap * rate), np.float32)
                async with contextlib.aclosing(speech.chunks()) as chunks:
                    first = True
                    async for chunk in chunks:
                        if not started:
                            await self.write_event(AudioStart(rate=rate, width=2, channels=1).event())
                        elif first and gap.size:  # the pause between sentences, as one request would have it
                            await self._audio(gap, rate)
                        started, first = True, False
                        await self._audio(chunk, rate)
            except SpeakError as exc:
                message = f"{exc} (in about {exc.retry_after} s)" if isinstance(exc, BusyError) else str(exc)
                await self._error(exc.code, message)
                utterance.fail()
            except ConnectionError:
                raise
            except Exception as exc:  # a bug: say so, drop this request, keep the connection
                log.error("Wyoming: unexpected error while speaking: %s: %s", type(exc).__name__, exc)
                log.debug("traceback", exc_info=exc)
                await self._error("internal", "the server failed on this request; its log says why")
                utterance.fail()
        if started:
            await self.write_event(AudioStop().event())
        if utterance.streaming:
            await self.write_event(SynthesizeStopped().event())

    async def _audio(self, audio: np.ndarray, rate: int) -> None:
        data = pcm16(audio)
        step = CHUNK_SAMPLES * 2
        for at in range(0, len(data), step):
            await self.write_event(AudioChunk(rate=rate, width=2, channels=1, audio=data[at : at + step]).event())

    # -- writing and closing -----------------------------------------------------------------------------------
    async def write_event(self, event: Event) -> None:
        async with self._write_lock:  # the reader (describe, errors) and the speaker both write
            await super().write_event(event)

    async def _error(self, code: str, message: str) -> None:
        with contextlib.suppress(ConnectionError):
            await self.write_event(Error(text=" ".join(message.split()), code=code).event())

    def end_requests(self) -> None:
        """The server is stopping: take no more text; each request ends after the sentence being made."""
        for utterance in self._unfinished:
            utterance.fail()
            utterance.close()
        self._stream = None

    async def disconnect(self) -> None:
        """The client left (or the server is closing it): cancel what it asked for; its job stops after the sentence."""
        if self._speaker is not None:
            self._speaker.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await self._speaker
        self.idle.set()
