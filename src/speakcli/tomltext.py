"""TOML read from files: nesting too deep for the parser is a TOMLDecodeError like any other bad TOML."""

from __future__ import annotations

from typing import Any

import tomllib


def loads(text: str) -> dict[str, Any]:
    """`tomllib.loads`, but `a = [[[[...` nested past the interpreter's recursion limit raises
    `tomllib.TOMLDecodeError` (which the callers turn into one line), not a RecursionError (a crash)."""
    try:
        return tomllib.loads(text)
    except RecursionError:
        raise tomllib.TOMLDecodeError("nested too deeply") from None
