"""The synthesis worker's scheduling: jobs as data, the runs it steps, and the order it serves them in."""

from speakcli.scheduling.jobs import CallTask, Job, Priority, ProgressCallback, SpeechTask
from speakcli.scheduling.policy import BACKGROUND_EVERY, Scheduler

__all__ = ["BACKGROUND_EVERY", "CallTask", "Job", "Priority", "ProgressCallback", "Scheduler", "SpeechTask"]
