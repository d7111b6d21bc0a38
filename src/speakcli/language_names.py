"""The display name of each language code an engine speaks: one table for every front end."""

from __future__ import annotations

from speakcli.text import base_language

# XTTS v2's languages and the bundled voice's, by base code (coqui's "zh-cn" is "zh", as the engines report it).
LANGUAGE_NAMES = {
    "ar": "Arabic", "cs": "Czech", "de": "German", "en": "English", "es": "Spanish", "fr": "French",
    "hi": "Hindi", "hu": "Hungarian", "it": "Italian", "ja": "Japanese", "ko": "Korean", "nl": "Dutch",
    "pl": "Polish", "pt": "Portuguese", "ru": "Russian", "tr": "Turkish", "zh": "Chinese",
}  # fmt: skip


def language_name(code: str) -> str:
    """The language's English name ("zh" and "zh-cn" are Chinese); the code itself for one not in the table."""
    return LANGUAGE_NAMES.get(base_language(code), code)
