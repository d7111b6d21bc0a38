"""The CLI's words for core error hints: core errors say what is wrong, this says which flag fixes it."""

from __future__ import annotations

from speakcli.errors import Hint, SpeakError

HINTS: dict[str, str] = {
    Hint.FORCE: "pass --force to replace it",
    Hint.WRITE_FILE: "or write a file with -o speech.wav",
    Hint.OUTPUT_DEVICE: "pick one with --output-device (see `speakcli devices`), or write a file with -o speech.wav",
    Hint.MODEL_DIR: "pass --model-dir with a folder holding config.json, model.pth and vocab.json, "
    "set SPEAKCLI_XTTS_DIR, or run `speakcli download`",
    Hint.DEVICE_CPU: "use --device cpu",
    Hint.ENGINE_XTTS: "use --engine xtts with an XTTS model (see README: Real XTTS v2 weights)",
    Hint.LIST_VOICES: "see `speakcli voices`",
    Hint.VOICE_CLIP: "pass --voice with a reference clip",
    Hint.STATE_FILE: "give this one its own --state-file",
    Hint.EVENTS_PATH: "pass another --events path",
    Hint.OUTPUT_DIR: "pass another --output-dir",
    Hint.GIVE_TEXT: "pass TEXT, or pipe text on stdin",
    Hint.VERBATIM: "pass --verbatim to speak it as written",
    Hint.NO_SERVER: "run it again (--no-server speaks without the server)",
    Hint.NAME_TEMPLATE: "fix --name-template: use {slug}, {hash}, {index}, {source}",
}
# Where a command's flags differ from the usual words.
COMMAND_HINTS: dict[tuple[str, str], str] = {
    ("watch", Hint.WRITE_FILE): "or run with --no-play --output-dir DIR",
    (
        "watch",
        Hint.OUTPUT_DEVICE,
    ): "pick one with --output-device (see `speakcli devices`), or run with --no-play --output-dir DIR",
    ("batch", Hint.FORCE): "rerun the batch with --force",
    ("devices", Hint.WRITE_FILE): "speakcli can still write audio files with -o",
    ("batch", Hint.OUTPUT_DIR): "pass another --output-dir (a folder you can write)",
}


def render(exc: SpeakError, command: str | None) -> str:
    """The error's one line for the terminal: its message, then what to type."""
    message = str(exc)
    hint = exc.hint and (COMMAND_HINTS.get((command or "", exc.hint)) or HINTS.get(exc.hint))
    return f"{message}; {hint}" if hint else message
