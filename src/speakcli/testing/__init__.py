"""Test doubles and fixtures shipped with speakcli, for its tests and benchmarks (as click.testing is for click)."""

from speakcli.testing.fakes import FakeEngine
from speakcli.testing.signals import speech_like_wav, tone, voiced, write_clip

__all__ = ["FakeEngine", "speech_like_wav", "tone", "voiced", "write_clip"]
