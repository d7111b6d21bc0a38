"""Batch synthesis: items from text, JSONL, CSV or EPUB; safe names, atomic files, a manifest, resume, chaptered concat."""

from speakcli.batch.chapters import Mark, chapter_marks, chapter_table
from speakcli.batch.epub import BookInfo, read_epub
from speakcli.batch.executor import Executor, LocalExecutor, Task, make_items, settled
from speakcli.batch.items import FIELDS, Book, InputFormat, Item, input_format, read_book, read_items
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
from speakcli.batch.sections import CHAPTER_MODES, ChapterMode, Split

__all__ = [
    "CHAPTER_MODES",
    "DEFAULT_TEMPLATE",
    "FIELDS",
    "MANIFEST",
    "TEMPLATE_FIELDS",
    "BatchOptions",
    "Book",
    "BookInfo",
    "ChapterMode",
    "Executor",
    "InputFormat",
    "Item",
    "LocalExecutor",
    "Manifest",
    "Mark",
    "Result",
    "Split",
    "Summary",
    "Task",
    "chapter_marks",
    "chapter_table",
    "check_batch",
    "check_template",
    "concat",
    "done_record",
    "input_format",
    "load_manifest",
    "make_items",
    "plan_outputs",
    "read_book",
    "read_epub",
    "read_items",
    "resolve_settings",
    "run_batch",
    "safe_name",
    "settled",
    "slug",
    "text_hash",
]
