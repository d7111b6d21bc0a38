"""Test doubles and fixtures shipped with speakcli, for its tests and benchmarks (as click.testing is for click)."""

from speakcli.testing.fakes import FakeEngine
from speakcli.testing.players import StalledPlayer
from speakcli.testing.services import FunctionJob, FunctionService
from speakcli.testing.signals import speech_like_wav, tone, voiced, write_clip

__all__ = [
    "FakeEngine",
    "FunctionJob",
    "FunctionService",
    "StalledPlayer",
    "speech_like_wav",
    "tone",
    "voiced",
    "write_clip",
]
