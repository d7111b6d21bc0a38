"""Atomic file writes: a temp file in the same folder, then a rename, so readers see old or new, never half."""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path

from speakcli.errors import Hint, OutputError, UnwritableError

PART_SUFFIX = ".part"
# File names are limited to 255 bytes on common file systems; the temp name must fit whatever the final name is.
NAME_MAX = 255
_TEMP_EXTRA = len(".") + 8 + len(".") + len(PART_SUFFIX)


def temp_name(name: str) -> str:
    """A hidden, unique temp name in the same folder: `.NAME.RANDOM.part`, NAME shortened so it fits 255 bytes."""
    raw = name.encode("utf-8", "surrogateescape")[: NAME_MAX - _TEMP_EXTRA - 1]
    short = raw.decode("utf-8", "ignore")
    return f".{short}.{secrets.token_hex(4)}{PART_SUFFIX}"


def atomic_write(path: Path, data: bytes, fsync: bool = True, mode: int = 0o666) -> None:
    """Replace `path` with `data` in one step; `fsync` also survives power loss, not just a killed process.

    The file gets `mode` less the umask, as a plain open() would give (0666 by default): the kernel applies the
    umask to os.open's mode, where mkstemp would force 0600. A private file passes 0o600.
    """
    while True:
        tmp = path.parent / temp_name(path.name)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# A write failing with one of these fails again for every file in that folder: a full disk or quota, a read-only file
# system, no permission on the folder (a file is written as a new temp file there), a size limit (RLIMIT_FSIZE).
_FOLDER_ERRNOS = {
    code
    for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG)
    if code is not None
}


def write_error(message: str, exc: OSError, hint: str | None = None) -> OutputError:
    """A failed write as an output error, `message` followed by the system's reason: an `UnwritableError` when every
    later write in the same folder would fail too (so a run of many files can stop)."""
    kind = UnwritableError if exc.errno in _FOLDER_ERRNOS else OutputError
    return kind(f"{message}: {exc.strerror or exc}", hint=hint)


def clean_stale_parts(folder: Path) -> int:
    """Remove the temp files a killed writer left in `folder`; returns how many. Only one writer may own it."""
    n = 0
    for p in folder.glob(f".*{PART_SUFFIX}"):
        with contextlib.suppress(OSError):
            p.unlink()
            n += 1
    return n


def check_folder(folder: Path) -> None:
    """Refuse an output folder that is a file or cannot be looked up (a name too long); a missing one is fine (it
    is created when first written)."""
    try:
        is_file = folder.exists() and not folder.is_dir()
    except OSError as exc:
        raise OutputError(f"cannot use output folder {folder} ({exc.strerror or exc})", hint=Hint.OUTPUT_DIR) from None
    if is_file:
        raise OutputError(f"{folder} is a file, not a folder", hint=Hint.OUTPUT_DIR)


def name_bytes(name: str) -> int:
    """A file name's length as the file system counts it (NAME_MAX is in bytes)."""
    return len(name.encode("utf-8", "surrogateescape"))
