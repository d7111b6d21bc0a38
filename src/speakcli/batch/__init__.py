"""Batch synthesis: items from text, JSONL or CSV; safe names, atomic files, a manifest, resume, concat."""

from speakcli.batch.executor import Executor, LocalExecutor, Task, make_items, settled
from speakcli.batch.items import FIELDS, InputFormat, Item, Split, input_format, read_items
from speakcli.batch.manifest import MANIFEST, Manifest, Result, done_record, load_manifest
from speakcli.batch.plan import (
    DEFAULT_TEMPLATE,
    TEMPLATE_FIELDS,
    check_template,
    plan_outputs,
    resolve_settings,
    safe_name,
    slug,
    text_hash,
)
from speakcli.batch.run import BatchOptions, Summary, check_batch, concat, run_batch

__all__ = [
    "DEFAULT_TEMPLATE",
    "FIELDS",
    "MANIFEST",
    "TEMPLATE_FIELDS",
    "BatchOptions",
    "Executor",
    "InputFormat",
    "Item",
    "LocalExecutor",
    "Manifest",
    "Result",
    "Split",
    "Summary",
    "Task",
    "check_batch",
    "check_template",
    "concat",
    "done_record",
    "input_format",
    "load_manifest",
    "make_items",
    "plan_outputs",
    "read_items",
    "resolve_settings",
    "run_batch",
    "safe_name",
    "settled",
    "slug",
    "text_hash",
]
