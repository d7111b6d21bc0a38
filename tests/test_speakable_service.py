"""The text step in every front end: what reaches the engine from the service, the CLI, HTTP and Wyoming."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from wyoming.client import AsyncTcpClient
from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop

from helpers import run_cli
from serve_helpers import serving, wyoming_serving
from speakcli import engines
from speakcli.adverts import Advert, advertise, find_servers, new_secret
from speakcli.engines import EngineSpec
from speakcli.errors import OnlyMarkupError, UsageError
from speakcli.lexicon import Lexicon
from speakcli.service import SpeechService
from speakcli.settings import load_settings
from speakcli.testing import FakeEngine

REPLY = (
    "*smiles* Sure! Here's **how**:\n"
    "\n"
    "1. Open the [settings](https://example.com/settings)\n"
    "2. Pick a voice 🎤\n"
    "\n"
    "```json\n"
    '{"voice": "joe"}\n'
    "```\n"
    "| a | b |\n"
    "|---|---|\n"
    "That's it, gg!"
)
SAID = ["smiles.", "Sure!", "Here's how:", "1: Open the settings.", "2: Pick a voice.", "That's it, gg!"]


@pytest.fixture
def lexicon(tmp_path: Path) -> Path:
    path = tmp_path / "words.tsv"
    path.write_text("gg\tgood game\ngood\tfine\nJoe\tJoseph\n", encoding="utf-8")
    return path


@pytest.fixture
def recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`open(**settings)`: a service whose engine records every text it is given (`engine.texts`)."""
    engine = FakeEngine()
    monkeypatch.setitem(engines._REGISTRY, "fake", lambda spec: engine)
    opened: list[SpeechService] = []

    def open_(**flags: Any) -> SpeechService:
        service = SpeechService(load_settings({"engine": "piper", **flags}), EngineSpec("fake"))
        opened.append(service)
        return service

    open_.engine = engine  # type: ignore[attr-defined]
    yield open_
    for service in opened:
        service.close()


def spoken(service: SpeechService, text: str, **kwargs: Any) -> list[str]:
    engine = service.engine
    assert isinstance(engine, FakeEngine)
    before = len(engine.texts)
    list(service.speak(text, None, service.options(), **kwargs))
    return engine.texts[before:]


def test_the_engine_is_given_what_a_reader_would_say(recorded: Any, lexicon: Path) -> None:
    assert spoken(recorded(), REPLY) == SAID
    assert spoken(recorded(actions="skip"), REPLY)[:2] == ["Sure!", "Here's how:"]
    assert spoken(recorded(verbatim=True), "*smiles* **Hi**") == ["*smiles* **Hi**"]
    words = recorded(lexicon=lexicon)
    assert spoken(words, REPLY)[-1] == "That's it, good game!"  # the lexicon once: "good" is not made "fine"
    assert spoken(recorded(verbatim=True, lexicon=lexicon), "**gg**") == ["**good game**"]  # verbatim: words only
    # SSML is spoken as its author wrote it: no Markdown reading, no lexicon.
    assert spoken(words, "<speak>*gg* and **joe**</speak>") == ["*gg* and **joe**"]
    # A stream's sentences, already made speakable, are not made so again.
    assert spoken(words, "gg and good", prepared=True) == ["gg and good"]


def test_text_with_words_but_nothing_to_say_once_read_fails_with_a_hint(recorded: Any) -> None:
    service = recorded()
    job = service.speak("```\nprint('hi')\n```\n| a | b |", None, service.options())
    with pytest.raises(OnlyMarkupError, match="nothing to say once its Markdown is read aloud") as caught:
        list(job)
    assert caught.value.exit_status == 2 and caught.value.code == "nothing_to_say"
    assert spoken(recorded(verbatim=True), "```\nprint('hi')\n```") == ["``` print('hi') ```"]


def test_a_swapped_lexicon_speaks_from_the_next_text_and_queued_text_keeps_its_own(
    recorded: Any, lexicon: Path, tmp_path: Path
) -> None:
    service = recorded(lexicon=lexicon)
    engine = recorded.engine
    engine.gate.clear()  # the engine is busy: the next text waits in the queue
    busy = service.speak("Busy now.", None, service.options())
    assert engine.started.wait(30)
    queued = service.speak("gg", None, service.options())
    other = tmp_path / "other.toml"
    other.write_text('gg = "well played"\n', encoding="utf-8")
    service.use_lexicon(Lexicon.load(other))
    later = service.speak("gg", None, service.options())
    engine.gate.set()
    for job in (busy, queued, later):
        list(job)
    assert engine.texts[-2:] == ["good game", "well played"]
    service.use_lexicon(None)
    assert spoken(service, "gg") == ["gg"]


# -- settings ---------------------------------------------------------------------------------------------------


def test_text_settings_come_from_flags_env_and_config(tmp_path: Path, lexicon: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'verbatim = true\nactions = "skip"\nlexicon = "{lexicon}"\n', encoding="utf-8")
    from_config = load_settings({}, env={"SPEAKCLI_CONFIG": str(config)})
    assert (from_config.verbatim, from_config.actions, from_config.lexicon) == (True, "skip", lexicon)
    env = {"SPEAKCLI_CONFIG": str(config), "SPEAKCLI_VERBATIM": "0", "SPEAKCLI_ACTIONS": "speak"}
    assert (load_settings({}, env=env).verbatim, load_settings({}, env=env).actions) == (False, "speak")
    assert load_settings({"verbatim": True}, env={"SPEAKCLI_VERBATIM": "no"}).verbatim is True
    assert load_settings({}, env={}).verbatim is False and load_settings({}, env={}).actions == "speak"


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"SPEAKCLI_VERBATIM": "maybe"}, "SPEAKCLI_VERBATIM: verbatim = 'maybe' is not true or false"),
        ({"SPEAKCLI_ACTIONS": "narrate"}, "SPEAKCLI_ACTIONS: actions = 'narrate' is unknown; use one of: speak, skip"),
    ],
)
def test_bad_text_settings_are_usage_errors_naming_their_source(env: dict[str, str], says: str) -> None:
    with pytest.raises(UsageError, match=says):
        load_settings({}, env=env)


def test_a_bad_lexicon_stops_every_command_at_start_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.tsv"
    bad.write_text("lol laughing\n", encoding="utf-8")
    book = tmp_path / "book.txt"
    book.write_text("One line.\n", encoding="utf-8")
    runs = [
        ["say", "Hi.", "--engine", "piper", "-o", str(tmp_path / "x.wav"), "--lexicon", str(bad)],
        ["batch", str(book), "-d", str(tmp_path / "out"), "--engine", "piper", "--lexicon", str(bad)],
        ["watch", str(book), "--engine", "piper", "--no-play", "-d", str(tmp_path / "w"), "--lexicon", str(bad)],
        ["serve", "--engine", "piper", "--port", "0", "--lexicon", str(bad)],
    ]
    for args in runs:
        result = run_cli(*args, timeout=120)
        lines = result.stderr.decode().strip().splitlines()
        assert result.returncode == 2, (args[0], result.stderr)
        assert lines == [
            f"speakcli: error: lexicon {bad}, line 1: no tab; write the word, a tab, then how to say it"
            " (or use a .toml file)"
        ], (args[0], lines)
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "out").exists()


def test_say_of_only_code_exits_2_and_names_verbatim(tmp_path: Path) -> None:
    result = run_cli("say", "```\nls -la\n```", "--engine", "piper", "-o", str(tmp_path / "x.wav"), timeout=120)
    stderr = result.stderr.decode().strip()
    assert result.returncode == 2 and not (tmp_path / "x.wav").exists()
    assert "nothing to say once its Markdown is read aloud" in stderr and len(stderr.splitlines()) == 1
    assert stderr.endswith("pass --verbatim to speak it as written")


# -- warm starts and batch keys -----------------------------------------------------------------------------------


def test_a_warm_server_is_used_only_with_the_same_text_step(lexicon: Path, tmp_path: Path) -> None:
    plain = load_settings({"engine": "piper"})
    spec = engines.choose_engine(plain)
    advertise(Advert.of("http://127.0.0.1:9", spec, plain, auth=False, secret=new_secret(), max_text=4096))
    assert find_servers(spec, plain)
    for flags in ({"verbatim": True}, {"actions": "skip"}, {"lexicon": lexicon}):
        assert find_servers(spec, load_settings({"engine": "piper", **flags})) == [], flags
    worded = load_settings({"engine": "piper", "lexicon": lexicon})
    advertise(Advert.of("http://127.0.0.1:10", spec, worded, auth=False, secret=new_secret(), max_text=4096))
    assert [a.url for a in find_servers(spec, worded)] == ["http://127.0.0.1:10"]
    lexicon.write_text("gg\tgood game, well played\n", encoding="utf-8")  # edited since: the server's is stale
    assert find_servers(spec, worded) == []


def test_a_batch_item_is_made_again_when_the_text_step_changes(recorded: Any, lexicon: Path, tmp_path: Path) -> None:
    from speakcli.batch import Item, run_batch

    def made(**flags: Any) -> int:
        items = [Item(1, "b:1", "**gg** now.")]
        return run_batch(recorded(**flags), items, tmp_path)[1].ok

    assert made() == 1 and made() == 0
    assert made(lexicon=lexicon) == 1 and made(lexicon=lexicon) == 0
    assert made(verbatim=True) == 1 and made(verbatim=True) == 0
    assert made(actions="skip") == 1


# -- servers ----------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_over_http_markdown_sounds_as_the_words_a_reader_says() -> None:
    """End to end with the real Piper voice: the OpenAI route speaks an LLM's Markdown as its plain words."""
    markdown = "## Weather\n\n**Sunny**, with *light* wind 🌤️.\n\n- High: 20 degrees\n- Low: 9 degrees"
    plain = "Weather.\n\nSunny, with light wind.\n\nHigh: 20 degrees.\n\nLow: 9 degrees."
    with serving() as served, httpx.Client(base_url=served.url, timeout=120) as client:

        def audio(text: str) -> bytes:
            r = client.post("/v1/audio/speech", json={"input": text, "voice": "joe", "response_format": "pcm"})
            assert r.status_code == 200, r.text
            return r.content

        want = audio(plain)
        assert len(want) > 24_000 * 2 and audio(markdown) == want
        r = client.post("/v1/audio/speech", json={"input": "```\ncode only\n```", "voice": "joe"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "nothing_to_say"


@pytest.mark.slow
def test_a_wyoming_stream_of_markdown_reaches_the_engine_read_aloud_with_the_lexicon_once(lexicon: Path) -> None:
    engine = FakeEngine()
    pieces = [REPLY[i : i + 4] for i in range(0, len(REPLY), 4)]
    with serving({"lexicon": lexicon}, engine=engine) as served, wyoming_serving(served.gateway) as port:

        async def scenario() -> None:
            async with AsyncTcpClient("127.0.0.1", port, connect_timeout=10, read_timeout=30) as client:
                await client.write_event(SynthesizeStart().event())
                for piece in pieces:
                    await client.write_event(SynthesizeChunk(text=piece).event())
                await client.write_event(SynthesizeStop().event())
                while (event := await client.read_event()) is not None and event.type != "synthesize-stopped":
                    assert event.type != "error", event.data

        asyncio.run(asyncio.wait_for(scenario(), 120))
    assert " ".join(engine.texts) == " ".join([*SAID[:-1], "That's it, good game!"]), engine.texts


# -- the watch daemon's lexicon file ----------------------------------------------------------------------------


def test_a_watch_daemon_speaks_the_next_line_with_its_changed_lexicon_and_keeps_it_when_broken(
    recorded: Any, lexicon: Path, tmp_path: Path
) -> None:
    """The daemon as the CLI builds it (a LineSpeaker over the service, the lexicon file checked before each line):
    an edit, a broken file (kept, told once), a replaced file."""
    import os
    import threading

    from speakcli.watch import EventLog, WatchDaemon, WatchOptions
    from speakcli.watch.relexicon import LexiconFile
    from speakcli.watch.speaking import LineSpeaker

    service = recorded(lexicon=lexicon)
    events: list[dict[str, Any]] = []
    cv = threading.Condition()

    def record(event: dict[str, Any]) -> None:
        with cv:
            events.append(event)
            cv.notify_all()

    log = EventLog(None)
    log.listeners.append(record)
    chat = tmp_path / "chat.txt"
    chat.touch()
    speak = LineSpeaker(service, stream=False, lexicon=LexiconFile(lexicon, service, log))
    daemon = WatchDaemon(chat, speak, service.sample_rate, WatchOptions(poll_interval=0.2, pause=0.0), events=log)

    def said(text: str) -> str:
        """Write a line; what the engine was given for it."""
        with cv:
            before = sum(e["event"] == "synthesized" for e in events)
        with chat.open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
        with cv:
            assert cv.wait_for(lambda: sum(e["event"] == "synthesized" for e in events) > before, 30), events[-3:]
        return recorded.engine.texts[-1]

    def told() -> list[dict[str, Any]]:
        with cv:
            return [e for e in events if e["event"] == "lexicon"]

    daemon.start()
    try:
        assert said("gg") == "good game" and told() == []
        lexicon.write_text("gg\twell played\n", encoding="utf-8")  # edited in place
        assert said("gg") == "well played"
        assert told() == [{**told()[0], "file": str(lexicon), "words": 1}]
        lexicon.write_text("gg no tab\n", encoding="utf-8")  # broken: the lexicon in use stays, told once
        assert said("gg, again") == "well played, again" and said("gg") == "well played"
        assert [e.get("error", "") for e in told()[1:]] == [
            f"lexicon {lexicon}, line 1: no tab; write the word, a tab, then how to say it (or use a .toml file)"
        ]
        fresh = tmp_path / "words.new"
        fresh.write_text("gg\tgee gee\n", encoding="utf-8")
        os.replace(fresh, lexicon)  # an editor's save: a new file under the name
        assert said("gg") == "gee gee" and told()[-1]["words"] == 1
    finally:
        daemon.stop()
        assert daemon.join(20)


@pytest.mark.slow
def test_a_watch_process_reads_its_changed_lexicon_with_the_piper_voice(tmp_path: Path) -> None:
    """`speakcli watch --lexicon` end to end: after the file changes, the next line is longer by the new words."""
    import signal
    import subprocess
    import sys

    from helpers import read
    from test_watch import _wait_events

    words = tmp_path / "words.toml"
    words.write_text('gg = "ok"\n', encoding="utf-8")
    chat, events = tmp_path / "chat.txt", tmp_path / "events.jsonl"
    chat.touch()
    args = ["--engine", "piper", "--no-play", "-d", str(tmp_path / "out"), "--lexicon", str(words)]
    args += ["--events", str(events), "--poll-interval", "0.2", "--no-state"]
    proc = subprocess.Popen([sys.executable, "-m", "speakcli", "watch", str(chat), *args], stderr=subprocess.PIPE)
    try:

        def written(n: int) -> list[dict[str, Any]]:
            got = _wait_events(events, lambda ev: sum(e["event"] == "written" for e in ev) >= n, proc, timeout=180)
            return [e for e in got if e["event"] in ("written", "lexicon")]

        _wait_events(events, lambda ev: any(e["event"] == "started" for e in ev), proc, timeout=180)
        chat.write_text("gg\n", encoding="utf-8")
        first = written(1)
        words.write_text('gg = "a good game, well played by everyone on both of the teams"\n', encoding="utf-8")
        with chat.open("a", encoding="utf-8") as fh:
            fh.write("gg\n")
        second = written(2)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
        proc.stderr.close()  # type: ignore[union-attr]
    assert [e["event"] for e in second] == ["written", "lexicon", "written"]
    assert second[1]["words"] == 1
    short, long = (len(read(Path(e["file"]))[0]) for e in (first[0], second[2]))
    assert long > 4 * short, (short, long)
