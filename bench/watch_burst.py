"""watch under a burst: the daemon's peak memory while a big append waits behind --max-queue, SIGTERM's delay."""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from bench.common import BIN, proc_mib, table


def run(runs: int) -> str:
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
            base = proc_mib(proc.pid, "VmHWM")
            with path.open("ab") as fh:
                for k in range(0, len(payload), 1 << 20):
                    fh.write(payload[k : k + (1 << 20)])
            time.sleep(settle)  # let the daemon read whatever it is going to read of the burst
            peak = proc_mib(proc.pid, "VmHWM")
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
