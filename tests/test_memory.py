"""Memory per request bounded by the request, whatever the script, and a server whose RSS settles (Linux)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serve_helpers import serve_process

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc and wait4's maxrss (Linux)"),
]

# A long but ordinary English sentence (222 characters, 237 phonemes): made in one model call, as before.
ORDINARY = (
    "In the beginning, the universe was created; this has made a lot of people very angry and been widely regarded "
    "as a bad move, according to the guide, which has a great deal to say on the subject of towels and other matters."
)
# Each made one model call before, whose memory grows with its audio: 1,500 phonemes peaked at 1.8 GB.
LONG = {
    "cjk": "語" * 100,  # espeak reads each as "Chinese letter": 1,500 phonemes, no space, no sentence end
    "latin": "Build 7 failed at commit " + ("0123456789abcdef" * 19)[:300] + ".",  # a hash, spelled: 1,250
}
# What a call at the phoneme limit (300) may add over that sentence's peak: measured +80 MB, room to spare.
# Each long request in one call added 1.1-1.3 GB.
MARGIN_MB = 300
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wizards")


# Started from a small launcher: a child's maxrss starts from the RSS of the process it was forked from (the
# kernel carries it across exec), and this test process is hundreds of MB itself.
_LAUNCHER = """
import os, subprocess, sys
proc = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(proc.pid, 0)
print(usage.ru_maxrss // 1024)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def peak_rss_mb(text: str, out: Path) -> int:
    """The peak RSS of `speakcli say -o` speaking `text` locally, from the kernel's account of the process."""
    say = [sys.executable, "-m", "speakcli", "say", "-", "--engine", "piper", "-o", str(out)]
    result = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, *say],
        input=text.encode(),
        capture_output=True,
        env={**os.environ, "SPEAKCLI_NO_SERVER": "1"},
        timeout=600,
    )
    assert result.returncode == 0, result.stderr.decode()
    return int(result.stdout)


@pytest.fixture(scope="module")
def ordinary_peak_mb(tmp_path_factory: pytest.TempPathFactory) -> int:
    return peak_rss_mb(ORDINARY, tmp_path_factory.mktemp("ordinary") / "out.wav")


@pytest.mark.parametrize("script", sorted(LONG))
def test_a_long_request_peaks_near_one_long_ordinary_sentence(
    script: str, ordinary_peak_mb: int, tmp_path: Path
) -> None:
    peak = peak_rss_mb(LONG[script], tmp_path / "out.wav")
    assert peak <= ordinary_peak_mb + MARGIN_MB, f"{script}: peak {peak} MB, one sentence {ordinary_peak_mb} MB"


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) // 1024
    raise AssertionError(f"no VmRSS for process {pid}")


def test_a_server_gives_back_each_requests_memory() -> None:
    """After a few short requests, 20 more of every length up to ~20 s of audio leave RSS where it was: no
    request's peak is kept (onnxruntime's arena kept it: +400 MB after the first long one, and growing)."""
    rnd = random.Random(7)

    def text(n: int) -> str:
        return " ".join(rnd.choice(WORDS) for _ in range(n)) + "."

    with serve_process("--engine", "piper") as (proc, url, _lines), httpx.Client(base_url=url, timeout=300) as c:

        def speak(n: int, fmt: str = "wav") -> None:
            body = {"model": "tts-1", "input": text(n), "voice": "alloy", "response_format": fmt}
            r = c.post("/v1/audio/speech", json=body)
            assert r.status_code == 200, r.text

        for n in (4, 8, 12):
            speak(n)
        warm = rss_mb(proc.pid)
        for i in range(20):
            speak((5, 20, 60, 10)[i % 4], ("wav", "mp3", "pcm")[i % 3])
        settled = rss_mb(proc.pid)
    assert settled <= warm + 150, f"RSS {warm} MB after warm-up, {settled} MB after 20 more requests"


def test_freed_heap_goes_back_to_the_system() -> None:
    """glibc keeps freed blocks under its mmap threshold for reuse; `release_free_memory` hands them back."""
    code = """
from pathlib import Path
from speakcli.heap import release_free_memory

def rss():
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 // 2**20

blocks = [bytearray(64 * 1024) for _ in range(3000)]  # 192 MB of heap blocks
last = blocks[-1]  # holds the heap's top, so free() alone cannot shrink it
del blocks
freed = rss()
release_free_memory()
print(freed, rss())
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    freed, released = map(int, result.stdout.split())
    assert released < freed - 150, f"RSS {freed} MB with 192 MB freed, {released} MB after release_free_memory"
