"""Old home of the tiny XTTS builder, kept only while test_watch.py imports it: use speakcli.testing.tiny_xtts."""

from speakcli.testing.tiny_xtts import XTTS_LANGUAGES, add_builtin_speaker, build_tiny_xtts

__all__ = ["XTTS_LANGUAGES", "add_builtin_speaker", "build_tiny_xtts"]
