"""speakcli benchmarks, measured side by side in one run: `python bench/run.py [--runs N] [sections...]`."""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import tempfile
import time
from pathlib import Path

from common import BIN, ROOT, med, table, time_cmd

TEXT = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well. These days a chicken leg is a rare dish."
)


def coqui_tts_cmd(model: Path, text: str, out: Path | str, speaker: str = "Joe") -> list[str]:
    """coqui's own `tts` CLI on a model folder with a built-in speaker (it cannot read a WAV here)."""
    return [
        str(BIN / "tts"),
        "--text",
        text,
        "--model_path",
        str(model),
        "--config_path",
        str(model / "config.json"),
        "--speaker_idx",
        speaker,
        "--language_idx",
        "en",
        "--out_path",
        str(out),
    ]


def bench_help(runs: int) -> str:
    """Start-up cost a user pays for `--help`: speakcli against coqui's own `tts` CLI."""
    speak = time_cmd([str(BIN / "speakcli"), "--help"], runs)
    coqui = time_cmd([str(BIN / "tts"), "--help"], runs)
    rows = [
        ("speakcli --help", f"{med(speak):.3f}", f"{min(speak):.3f}", "1.00"),
        ("tts --help (coqui-tts)", f"{med(coqui):.3f}", f"{min(coqui):.3f}", f"{med(coqui) / med(speak):.2f}"),
    ]
    return table(f"--help start-up, {runs} runs", rows, ("command", "median s", "min s", "x speakcli"))


def bench_piper(runs: int) -> str:
    """Real-time factor of the bundled Piper voice, in process and through `say` end to end."""
    import numpy as np

    from speakcli.engines.base import SynthesisOptions
    from speakcli.engines.piper import PiperEngine
    from speakcli.service import utterance

    engine = PiperEngine()
    t0 = time.perf_counter()
    engine.load()
    load = time.perf_counter() - t0
    rtfs, first = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        chunks = utterance(engine, TEXT, None, SynthesisOptions())
        head = next(chunks)
        first.append(time.perf_counter() - t0)
        audio = np.concatenate([head, *chunks])
        rtfs.append((time.perf_counter() - t0) / (len(audio) / engine.sample_rate))
        seconds = len(audio) / engine.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "p.wav"
        cli = time_cmd([str(BIN / "speakcli"), "say", TEXT, "--engine", "piper", "-q", "-o", str(out), "--force"], runs)
    rows = [
        ("voice load", f"{load:.3f} s"),
        ("audio per run", f"{seconds:.2f} s"),
        ("real-time factor (synthesis s / audio s)", f"{med(rtfs):.3f}"),
        ("first audio chunk", f"{med(first) * 1000:.0f} ms"),
        ("`speakcli say -o` end to end", f"{med(cli):.2f} s"),
    ]
    return table(f"Piper voice (en_US-joe-medium), {runs} runs, median", rows, ("measure", "value"))


def bench_tiny_xtts(runs: int) -> str:
    """The tiny random XTTS through `say` end to end, against coqui's `tts` CLI on the same folder."""
    from xtts_fixture import add_builtin_speaker, build_tiny_xtts

    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_xtts(Path(tmp) / "tiny")
        # A built-in speaker, so coqui's CLI needs no reference audio (its torchaudio loader fails here).
        add_builtin_speaker(model, "Joe", ROOT / "voices/joe/reference.wav")
        out = Path(tmp) / "x.wav"
        env = {"HF_HUB_OFFLINE": "1"}
        speak = time_cmd(
            [
                str(BIN / "speakcli"),
                "say",
                "Hello there.",
                "--model-dir",
                str(model),
                "--voice",
                "Joe",
                "-q",
                "-o",
                str(out),
                "--force",
            ],
            runs,
            env=env,
        )
        clone = time_cmd(
            [str(BIN / "speakcli"), "say", "Hello there.", "--model-dir", str(model), "-q", "-o", str(out), "--force"],
            runs,
            env=env,
        )
        coqui = time_cmd(
            coqui_tts_cmd(model, "Hello there.", str(out)),
            runs,
            env=env,
        )
        rows = [
            ("speakcli say --voice Joe (built-in speaker)", f"{med(speak):.2f}", "1.00"),
            ("tts --speaker_idx Joe (coqui-tts CLI)", f"{med(coqui):.2f}", f"{med(coqui) / med(speak):.2f}"),
            ("speakcli say (clones voices/joe/reference.wav)", f"{med(clone):.2f}", f"{med(clone) / med(speak):.2f}"),
        ]
    return table(f"tiny XTTS end to end, {runs} runs", rows, ("command", "median s", "x speakcli"))


def _latent_rows(label: str, model: Path, runs: int, text: str) -> list[tuple[str, ...]]:
    """Per request on a loaded engine: cold cache (compute latents) vs warm (read the npz), interleaved."""
    import shutil

    from speakcli.engines.base import SynthesisOptions, Voice
    from speakcli.engines.xtts import XttsEngine
    from speakcli.latents import LatentCache
    from speakcli.service import utterance

    with tempfile.TemporaryDirectory() as cache_dir:
        cache = LatentCache(Path(cache_dir))
        engine = XttsEngine(model, device="cpu", cache=cache)
        t0 = time.perf_counter()
        engine.load()
        load = time.perf_counter() - t0
        voice = Voice("joe", clips=(ROOT / "voices/joe/reference.wav",))
        opts = SynthesisOptions(pause=0)
        list(utterance(engine, text, voice, opts))  # warm-up: first-call allocations
        cold, warm, latents_only = [], [], []
        for _ in range(runs):
            shutil.rmtree(cache_dir)
            engine._latents.clear()
            t0 = time.perf_counter()
            list(utterance(engine, text, voice, opts))
            cold.append(time.perf_counter() - t0)
            engine._latents.clear()  # a new process: only the disk cache is left
            t0 = time.perf_counter()
            list(utterance(engine, text, voice, opts))
            warm.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.compute_latents(voice.clips)
            latents_only.append(time.perf_counter() - t0)
    share = med(latents_only) / med(cold)
    return [
        (label, "model load", f"{load:.2f}", ""),
        (label, "request, cold cache (compute latents)", f"{med(cold):.3f}", "1.00"),
        (label, "request, warm cache (read npz)", f"{med(warm):.3f}", f"{med(warm) / med(cold):.2f}"),
        (label, "latent computation alone", f"{med(latents_only):.3f}", f"{share:.2f} of a cold request"),
    ]


def bench_latents(runs: int) -> str:
    """`say --voice NAME` cold vs warm latent cache: in process per request, and end to end through the CLI."""
    from xtts_fixture import build_tiny_xtts

    rows: list[tuple[str, ...]] = []
    with tempfile.TemporaryDirectory() as tmp:
        tiny = build_tiny_xtts(Path(tmp) / "tiny")
        rows += _latent_rows("tiny", tiny, runs, "Hello there.")
        env = {"XDG_CACHE_HOME": str(Path(tmp) / "xdg-cache"), "HF_HUB_OFFLINE": "1"}
        say = [
            str(BIN / "speakcli"),
            "say",
            "Hello there.",
            "--voice",
            "joe",
            "--model-dir",
            str(tiny),
            "-q",
            "-o",
            str(Path(tmp) / "o.wav"),
            "--force",
        ]
        cold_cli, warm_cli = [], []
        for _ in range(runs):
            import shutil

            shutil.rmtree(env["XDG_CACHE_HOME"], ignore_errors=True)
            cold_cli += time_cmd(say, 1, env=env)
            warm_cli += time_cmd(say, 1, env=env)
        rows += [
            ("tiny", "`speakcli say --voice joe`, cold cache", f"{med(cold_cli):.2f}", "1.00"),
            (
                "tiny",
                "`speakcli say --voice joe`, warm cache",
                f"{med(warm_cli):.2f}",
                f"{med(warm_cli) / med(cold_cli):.2f}",
            ),
        ]
    if os.environ.get("SPEAKCLI_BENCH_FULL", "1") != "0":
        with tempfile.TemporaryDirectory() as tmp:
            # Real v2 GPT dimensions with random weights; 64 audio tokens is about 3 s of speech.
            full = build_tiny_xtts(Path(tmp) / "full", full_size=True, max_audio_tokens=64)
            rows += _latent_rows("full-size", full, max(2, runs // 2), "Hello there, how are you today?")
    return table(f"latent cache, cold vs warm, {runs} runs, median seconds", rows, ("model", "measure", "s", "ratio"))


def _pct(xs: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(xs), q)) if xs else float("nan")


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


def bench_watch(runs: int) -> str:
    """watch: enqueue latency while the engine is busy (watchdog vs poll), line -> first audio, gaps (Piper)."""
    import tempfile

    from speakcli.engines.base import SynthesisOptions
    from speakcli.service import SpeechService, utterance
    from speakcli.settings import load_settings
    from speakcli.worker import SynthesisWorker

    rows: list[tuple[str, ...]] = []

    class Busy:
        """An engine that takes 200 ms a line, so lines pile up while we measure reading."""

        name, sample_rate = "busy", 8000

        def load(self) -> None: ...
        def languages(self) -> list[str]:
            return ["en"]

        def max_chars(self, language: str) -> int:
            return 10_000

        def check_voice(self, voice) -> None: ...  # type: ignore[no-untyped-def]
        def describe(self) -> dict:
            return {}

        def synthesize(self, text, voice, options):  # type: ignore[no-untyped-def]
            import numpy as np

            time.sleep(0.2)
            yield np.zeros(80, np.float32)

    with tempfile.TemporaryDirectory() as tmp:
        for label, use_watchdog, poll in (("watchdog events", True, 1.0), ("poll only, 1 s", False, 1.0)):
            worker = SynthesisWorker(Busy())
            lines = [f"busy line {i}" for i in range(100)]

            def speak(t: str, w: SynthesisWorker = worker):  # type: ignore[no-untyped-def]
                return w.submit(lambda engine, t=t: utterance(engine, t, None, SynthesisOptions(pause=0)))

            events, written = _run_watch(
                Path(tmp), lines, 0.02, speak, 8000, use_watchdog=use_watchdog, poll_interval=poll
            )
            worker.close()
            lat = [e["time"] - written[e["text"]] for e in events if e["event"] == "read"]
            rows.append(
                (
                    f"enqueue latency, {label} (engine busy)",
                    f"{_pct(lat, 50) * 1000:.1f} ms",
                    f"{_pct(lat, 99) * 1000:.1f} ms",
                    f"{len(lat)} lines",
                )
            )

        speaker = SpeechService(load_settings({"engine": "piper"}))  # the process ends with the bench
        opts = speaker.options()

        def speak_piper(t: str):  # type: ignore[no-untyped-def]
            return speaker.speak(t, None, opts)

        texts = [f"Chat message number {i} has arrived." for i in range(12)]
        events, written = _run_watch(Path(tmp), texts, 0.05, speak_piper, speaker.sample_rate, pause=0.2)
        first = [e["queued_to_first_audio"] for e in events if e["event"] == "synthesized"]
        rows.append(
            (
                "line -> first chunk synthesized (Piper)",
                f"{_pct(first, 50) * 1000:.0f} ms",
                f"{_pct(first, 99) * 1000:.0f} ms",
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
                    f"{_pct(idle, 50) * 1000:.0f} ms",
                    f"{max(idle) * 1000:.0f} ms (max)",
                    f"{len(idle)} lines",
                )
            )
            rows.append(
                (
                    "gap between utterances beyond --pause 0.2",
                    f"{_pct(gaps, 50) * 1000:.1f} ms",
                    f"{max(gaps) * 1000:.1f} ms (max)",
                    f"{len(gaps)} gaps, lines queued",
                )
            )
        # Memory over a long run: RSS after the first 100 lines against after 600 (Piper, no playback).
        rss: dict[int, float] = {}

        def speak_and_sample(t: str):  # type: ignore[no-untyped-def]
            n = int(t.split()[1])
            if n in (100, n_rss):
                rss[n] = _rss_mib()
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


def _proc_mib(pid: int, key: str) -> float:
    """A memory figure of another process from /proc (VmRSS: now, VmHWM: its peak so far), in MiB."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_watch_burst(runs: int) -> str:
    """watch under a burst: the daemon's peak memory while a big append waits behind --max-queue, SIGTERM's delay."""
    import json
    import signal
    import subprocess

    mb = int(os.environ.get("SPEAKCLI_BENCH_BURST_MB", "50"))
    settle = float(os.environ.get("SPEAKCLI_BENCH_BURST_WAIT", "10"))
    line = b"a chat line of about the usual length, forty-some bytes\n"
    long_line = " ".join(f"word{i}." for i in range(125_000)).encode() + b"\n"
    # The same few lines get spoken whatever the size: the 1 MB row is the reference for the bigger append.
    cases = [
        ("1 MB of short lines", line * (1_000_000 // len(line))),
        (f"{mb} MB of short lines", line * (mb * 1_000_000 // len(line))),
        ("one 1 MB line", long_line),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (label, payload) in enumerate(cases):
            path, events = Path(tmp) / f"chat{i}.txt", Path(tmp) / f"events{i}.jsonl"
            path.touch()
            cmd = [str(BIN / "speakcli"), "watch", str(path), "--engine", "piper", "--no-play", "--no-state", "-q"]
            cmd += ["--output-dir", str(Path(tmp) / "out"), "--events", str(events), "--max-queue", "10"]
            proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL)
            while b'"started"' not in (events.read_bytes() if events.exists() else b""):
                time.sleep(0.05)  # another process's file: nothing to wait on but its content
            path.write_bytes(b"Warm up.\n")  # the voice loads on the first line: keep that out of the figures
            while b'"written"' not in events.read_bytes():
                time.sleep(0.05)
            base = _proc_mib(proc.pid, "VmHWM")
            with path.open("ab") as fh:
                for k in range(0, len(payload), 1 << 20):
                    fh.write(payload[k : k + (1 << 20)])
            time.sleep(settle)  # let the daemon read whatever it is going to read of the burst
            peak = _proc_mib(proc.pid, "VmHWM")
            before = events.stat().st_size
            start = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(600)
            stop = time.perf_counter() - start
            after = events.stat().st_size - before
            reads = sum(json.loads(e)["event"] == "read" for e in events.read_text().splitlines())
            rows.append(
                (
                    label,
                    f"{base:.0f}",
                    f"{peak:.0f}",
                    f"{peak - base:.0f}",
                    f"{stop:.2f} (rc {rc})",
                    f"{after / 1e6:.2f}",
                    str(reads),
                )
            )
    header = (
        "append, --max-queue 10",
        "peak before MiB",
        "peak MiB",
        "growth MiB",
        "SIGTERM -> exit s",
        "events MB after SIGTERM",
        "lines read",
    )
    return table("watch under a burst (Piper, --no-play)", rows, header)


def _rss_mib() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_batch(runs: int) -> str:
    """N items: one `speakcli batch` against N `speakcli say` calls and N coqui `tts` calls, same tiny model."""
    from xtts_fixture import add_builtin_speaker, build_tiny_xtts

    n = int(os.environ.get("SPEAKCLI_BENCH_ITEMS", "50"))
    lines = [f"Line number {i} of the batch." for i in range(n)]
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_xtts(Path(tmp) / "tiny")
        add_builtin_speaker(model, "Joe", ROOT / "voices/joe/reference.wav")
        src = Path(tmp) / "lines.txt"
        src.write_text("\n".join(lines) + "\n")
        env = {"HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(Path(tmp) / "cache")}
        common = ["--model-dir", str(model), "--voice", "Joe", "-q"]
        batch = time_cmd([str(BIN / "speakcli"), "batch", str(src), "-o", str(Path(tmp) / "b"), *common], 1, env=env)[0]
        say = sum(
            time_cmd([str(BIN / "speakcli"), "say", t, "-o", str(Path(tmp) / f"s{i}.wav"), *common], 1, env=env)[0]
            for i, t in enumerate(lines)
        )
        coqui = sum(
            time_cmd(
                coqui_tts_cmd(model, t, str(Path(tmp) / f"c{i}.wav")),
                1,
                env=env,
            )[0]
            for i, t in enumerate(lines)
        )
    rows = [
        (f"speakcli batch ({n} lines, one run)", f"{batch:.1f}", f"{batch / n:.3f}", "1.0"),
        (f"{n} x speakcli say", f"{say:.1f}", f"{say / n:.3f}", f"{say / batch:.1f}"),
        (f"{n} x tts (coqui-tts CLI)", f"{coqui:.1f}", f"{coqui / n:.3f}", f"{coqui / batch:.1f}"),
    ]
    return table(f"batch vs separate calls, tiny XTTS, {n} items", rows, ("how", "total s", "s per item", "x batch"))


SECTIONS = {
    "help": bench_help,
    "piper": bench_piper,
    "tiny-xtts": bench_tiny_xtts,
    "latents": bench_latents,
    "watch": bench_watch,
    "watch-burst": bench_watch_burst,
    "batch": bench_batch,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", help=f"any of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"# speakcli benchmarks\n\n{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    for name in args.sections or SECTIONS:
        print(SECTIONS[name](args.runs), flush=True)


if __name__ == "__main__":
    main()
