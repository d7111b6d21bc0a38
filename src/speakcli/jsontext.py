"""JSON read from what others wrote: nesting too deep for the parser is bad JSON like any other (a ValueError)."""

from __future__ import annotations

import json
from typing import Any


def loads(text: str | bytes | bytearray) -> Any:
    """`json.loads`, but `[[[[...` nested past the interpreter's recursion limit raises `json.JSONDecodeError`
    (a ValueError), not a RecursionError that the callers' handlers of bad JSON would let through."""
    try:
        return json.loads(text)
    except RecursionError:
        raise json.JSONDecodeError("nested too deeply", "", 0) from None
