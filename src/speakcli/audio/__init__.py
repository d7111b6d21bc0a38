"""Audio files and signal helpers; playback lives in `speakcli.audio.playback`, so servers never load PortAudio."""

from speakcli.audio.files import FORMATS, check_output_path, output_format, read_audio, write_audio
from speakcli.audio.signal import FADE_SECONDS, Fader, fade, faded

__all__ = [
    "FADE_SECONDS",
    "FORMATS",
    "Fader",
    "check_output_path",
    "fade",
    "faded",
    "output_format",
    "read_audio",
    "write_audio",
]
