"""Entry point for `python -m speakcli`."""

from speakcli.cli import main

raise SystemExit(main())
