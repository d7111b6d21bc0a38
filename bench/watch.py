"""watch: enqueue latency while the engine is busy (watchdog vs poll), line -> first audio, gaps (Piper)."""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from pathlib import Path

from bench.common import pct, proc_mib, table


def _run_watch(folder: Path, lines: list[str], every: float, speak, sample_rate: int, player=None, **opts):  # type: ignore[no-untyped-def]
    """Append `lines` to a file one every `every` seconds while a WatchDaemon follows it; returns its events."""
    import threading

    from speakcli.watch import EventLog, WatchDaemon, WatchOptions

    path = folder / f"chat-{time.monotonic_ns()}.txt"
    path.touch()
    events: list[dict] = []
    cv = threading.Condition()

    def on_event(e: dict) -> None:
        with cv:
            events.append(e)
            cv.notify_all()

    log = EventLog(None)
    log.listeners.append(on_event)
    daemon = WatchDaemon(path, speak, sample_rate, WatchOptions(**opts), player=player, events=log)
    daemon.start()
    written: dict[str, float] = {}
    for text in lines:
        with path.open("a") as fh:
            written[text] = time.time()
            fh.write(text + "\n")
        time.sleep(every)
    done_kind = "played" if player is not None else "synthesized"
    with cv:
        cv.wait_for(lambda: sum(e["event"] == done_kind for e in events) >= len(lines), timeout=600)
    daemon.stop()
    daemon.join(60)
    return events, written


def run(runs: int) -> str:
    from speakcli.engines.base import SynthesisOptions
    from speakcli.scheduling import SpeechTask
    from speakcli.service import SpeechService
    from speakcli.settings import load_settings
    from speakcli.ssml import plain
    from speakcli.testing import FakeEngine
    from speakcli.worker import SynthesisWorker

    rows: list[tuple[str, ...]] = []

    with tempfile.TemporaryDirectory() as tmp:
        for label, use_watchdog, poll in (("watchdog events", True, 1.0), ("poll only, 1 s", False, 1.0)):
            # 200 ms a line, so lines pile up while we measure reading.
            worker = SynthesisWorker(FakeEngine(delay=0.2, sample_rate=8000))
            lines = [f"busy line {i}" for i in range(100)]

            def speak(t: str, line: object, w: SynthesisWorker = worker):  # type: ignore[no-untyped-def]
                return w.submit(SpeechTask(plain(t), None, SynthesisOptions(pause=0)))

            events, written = _run_watch(
                Path(tmp), lines, 0.02, speak, 8000, use_watchdog=use_watchdog, poll_interval=poll
            )
            worker.close()
            lat = [e["time"] - written[e["text"]] for e in events if e["event"] == "read"]
            rows.append(
                (
                    f"enqueue latency, {label} (engine busy)",
                    f"{pct(lat, 50) * 1000:.1f} ms",
                    f"{pct(lat, 99) * 1000:.1f} ms",
                    f"{len(lat)} lines",
                )
            )

        speaker = SpeechService(load_settings({"engine": "piper"}))  # the process ends with the bench
        opts = speaker.options()

        def speak_piper(t: str, line: object):  # type: ignore[no-untyped-def]
            return speaker.speak(t, None, opts)

        texts = [f"Chat message number {i} has arrived." for i in range(12)]
        events, written = _run_watch(Path(tmp), texts, 0.05, speak_piper, speaker.sample_rate, pause=0.2)
        first = [e["queued_to_first_audio"] for e in events if e["event"] == "synthesized"]
        rows.append(
            (
                "line -> first chunk synthesized (Piper)",
                f"{pct(first, 50) * 1000:.0f} ms",
                f"{pct(first, 99) * 1000:.0f} ms",
                "line queued -> first chunk",
            )
        )
        try:
            from speakcli.audio.playback import StreamPlayer

            player = StreamPlayer(speaker.sample_rate)
        except Exception as exc:  # no sound device here: report what could be measured
            rows.append(("line -> first audio (Piper)", "n/a", "n/a", f"no audio output: {exc}"[:60]))
        else:
            events, written = _run_watch(
                Path(tmp), texts, 0.05, speak_piper, speaker.sample_rate, player=player, pause=0.2
            )
            played = [e for e in events if e["event"] == "played"]
            gaps = [
                b["first_audio_time"] - a["first_audio_time"] - a["audio_seconds"] - 0.2
                for a, b in itertools.pairwise(played)
            ]
            # From idle: lines spaced apart, after a first one that loads the voice and opens the stream.
            idle_events, idle_written = _run_watch(
                Path(tmp),
                ["Warm up.", *[f"Idle message {i}." for i in range(5)]],
                2.5,
                speak_piper,
                speaker.sample_rate,
                player=StreamPlayer(speaker.sample_rate),
                pause=0.2,
            )
            idle_text = {e["seq"]: e["text"] for e in idle_events if e["event"] == "read"}
            idle = [
                e["first_audio_time"] - idle_written[idle_text[e["seq"]]]
                for e in idle_events
                if e["event"] == "played" and idle_text[e["seq"]] != "Warm up."
            ]
            rows.append(
                (
                    "line -> first audio pulled by device (Piper, from idle)",
                    f"{pct(idle, 50) * 1000:.0f} ms",
                    f"{max(idle) * 1000:.0f} ms (max)",
                    f"{len(idle)} lines",
                )
            )
            rows.append(
                (
                    "gap between utterances beyond --pause 0.2",
                    f"{pct(gaps, 50) * 1000:.1f} ms",
                    f"{max(gaps) * 1000:.1f} ms (max)",
                    f"{len(gaps)} gaps, lines queued",
                )
            )
        # Memory over a long run: RSS after the first 100 lines against after 600 (Piper, no playback).
        rss: dict[int, float] = {}

        def speak_and_sample(t: str, line: object):  # type: ignore[no-untyped-def]
            n = int(t.split()[1])
            if n in (100, n_rss):
                rss[n] = proc_mib("self", "VmRSS")
            return speaker.speak(t, None, opts)

        n_rss = int(os.environ.get("SPEAKCLI_BENCH_RSS_LINES", "600"))
        many = [f"Line {i} of a long stream of chat messages." for i in range(1, n_rss + 1)]
        _run_watch(Path(tmp), many, 0.0, speak_and_sample, speaker.sample_rate, pause=0.0)
        rows.append(
            (
                f"RSS after 100 lines -> after {n_rss} lines (Piper)",
                f"{rss[100]:.0f} MiB",
                f"{rss[n_rss]:.0f} MiB",
                f"{rss[n_rss] - rss[100]:+.1f} MiB over {n_rss - 100} lines",
            )
        )
    return table("watch", rows, ("measure", "p50", "p99", "note"))
