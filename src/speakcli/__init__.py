"""speakcli: speak text from the command line with Coqui XTTS v2 or a bundled Piper voice."""

__version__ = "0.1.0"
