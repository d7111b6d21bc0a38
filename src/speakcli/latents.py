"""A content-keyed disk cache of speaker latents in npz files (no pickle), written atomically; best effort."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.fsutil import atomic_write

FORMAT_VERSION = 1
_CHUNK = 1 << 20
_EDGE = 4 << 20  # bytes hashed at each end of a big weights file


def file_digest(path: Path) -> str:
    """sha256 of a file's contents."""
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def weights_fingerprint(path: Path) -> str:
    """A content fingerprint of a large weights file: its size and sha256 of its first and last 4 MiB.

    Hashing all of a 1.8 GB model.pth would cost seconds on every run; any retrained or different checkpoint
    differs in size or in its edges (the pickle header and the last tensors).
    """
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode())
    with path.open("rb") as fh:
        h.update(fh.read(_EDGE))
        if size > 2 * _EDGE:
            fh.seek(size - _EDGE)
            h.update(fh.read(_EDGE))
        else:
            h.update(fh.read())
    return h.hexdigest()


@dataclass(frozen=True)
class CacheKey:
    """Everything latents depend on: the clips' contents (order-free), the model, and the latent parameters."""

    clip_digests: tuple[str, ...]
    model_id: str
    params: tuple[tuple[str, Any], ...]

    @classmethod
    def build(cls, clip_digests: Iterable[str], model_id: str, params: dict[str, Any]) -> CacheKey:
        return cls(tuple(sorted(clip_digests)), model_id, tuple(sorted(params.items())))

    def digest(self) -> str:
        blob = json.dumps(
            {"v": FORMAT_VERSION, "clips": self.clip_digests, "model": self.model_id, "params": self.params},
            sort_keys=True,
        )
        return hashlib.sha256(blob.encode()).hexdigest()


@dataclass(frozen=True)
class Latents:
    gpt_cond_latent: np.ndarray
    speaker_embedding: np.ndarray


class LatentCache:
    """`<dir>/<key digest>.npz` holding two float32 arrays and a JSON copy of the key for verification.

    The cache only saves time: an entry it cannot read is missed, and a folder it cannot write (read-only,
    full, not a folder) is reported once and skipped, never failing the synthesis that wanted it.
    """

    def __init__(self, directory: Path, warn: Callable[[str], None] | None = None) -> None:
        self.directory = directory
        self._warn = warn or (lambda message: None)
        self._warned: set[Path] = set()
        self._write_failed = False

    def path(self, key: CacheKey) -> Path:
        return self.directory / f"{key.digest()}.npz"

    def has(self, key: CacheKey) -> bool:
        return self.get(key, quiet=True) is not None

    def get(self, key: CacheKey, quiet: bool = False) -> Latents | None:
        """The cached latents, or None when absent; a corrupt entry is reported once and treated as absent."""
        path = self.path(key)
        try:
            if not path.exists():
                return None
            if not path.is_file():  # a folder or a device where an entry should be: as corrupt as garbage bytes
                raise ValueError("not a regular file")
            # allow_pickle=False: an object array (a pickle) in the file raises instead of running code.
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(bytes(data["key"]).decode())
                latent = np.array(data["gpt_cond_latent"], dtype=np.float32)
                embedding = np.array(data["speaker_embedding"], dtype=np.float32)
            if meta != json.loads(json.dumps(self._key_json(key))):
                raise ValueError("key mismatch")
            if (
                latent.ndim != 3
                or embedding.ndim != 3
                or not (np.isfinite(latent).all() and np.isfinite(embedding).all())
            ):
                raise ValueError("bad arrays")
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError, UnicodeDecodeError):
            if not quiet and path not in self._warned:
                self._warned.add(path)
                self._warn(f"latent cache entry {path.name} is corrupt; recomputing it")
            return None
        return Latents(latent, embedding)

    @staticmethod
    def _key_json(key: CacheKey) -> dict[str, Any]:
        return {"v": FORMAT_VERSION, "clips": list(key.clip_digests), "model": key.model_id, "params": key.params}

    def put(self, key: CacheKey, latents: Latents) -> Path | None:
        """Store atomically: a temp file in the same folder, fsync, rename. Concurrent writers each write whole files.

        Returns the entry's path, or None when it could not be written (warned about once per cache).
        """
        buf = io.BytesIO()
        np.savez(
            buf,
            gpt_cond_latent=np.asarray(latents.gpt_cond_latent, dtype=np.float32),
            speaker_embedding=np.asarray(latents.speaker_embedding, dtype=np.float32),
            key=np.frombuffer(json.dumps(self._key_json(key)).encode(), dtype=np.uint8),
        )
        path = self.path(key)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            if path.is_dir() and not path.is_symlink():
                path.rmdir()  # an empty folder in an entry's place (a non-empty one fails below, and is reported)
            atomic_write(path, buf.getvalue())
        except OSError as exc:
            if not self._write_failed:
                self._write_failed = True
                reason = exc.strerror or str(exc)
                self._warn(f"cannot write to the latent cache {self.directory} ({reason}); going on without caching")
            return None
        return path
