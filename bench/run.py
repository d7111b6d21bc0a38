"""speakcli benchmarks, measured side by side in one run: `python bench/run.py [--runs N] [sections...]`."""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
from pathlib import Path

# Each section is a module of this folder with a `run(runs: int) -> str` that returns a markdown table.
SECTIONS = {
    "help": "help",
    "piper": "piper",
    "tiny-xtts": "tiny_xtts",
    "latents": "latents",
    "watch": "watch",
    "watch-burst": "watch_burst",
    "watch-chat": "watch_chat",
    "batch": "batch",
    "serve": "serve",
    "ray-batch": "ray_batch",
    "xtts-speed": "xtts_speed",
    "scheduler": "scheduler",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sections", nargs="*", help=f"any of: {', '.join(SECTIONS)} (default: all)")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    if not __package__:
        # As a script, Python puts this folder first on sys.path, where bench/piper.py would shadow the piper-tts
        # package the Piper engine imports: load the sections as the `bench` package from the repository root.
        sys.path[0] = str(Path(__file__).resolve().parents[1])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"# speakcli benchmarks\n\n{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    for name in args.sections or SECTIONS:
        section = importlib.import_module(f"bench.{SECTIONS[name]}")
        print(section.run(args.runs), flush=True)


if __name__ == "__main__":
    main()
