"""The server front ends' shared core: admission to the single worker, limits, voices by name, batch jobs."""

from speakcli.serving.gateway import Gateway, Limits, SpeechRequest, Upload

__all__ = ["Gateway", "Limits", "SpeechRequest", "Upload"]
