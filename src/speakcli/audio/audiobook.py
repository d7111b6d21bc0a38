"""Audiobooks: AAC in MP4 (M4B, M4A) written as the audio comes, with chapter marks, tags and a cover, atomically."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from speakcli.audio.aac import BIT_RATE, pyav
from speakcli.audio.encode import AUDIO_FORMATS, Resampler, output_rate
from speakcli.errors import OutputError, UsageError
from speakcli.fsutil import temp_name, write_error

MAX_COVER = 16 * 1024 * 1024
_MS = Fraction(1, 1000)


@dataclass(frozen=True)
class CoverImage:
    """A cover as the file stores it: a JPEG or PNG, and its size in pixels."""

    data: bytes
    codec: str  # "mjpeg" or "png"
    width: int
    height: int


@dataclass(frozen=True)
class Tags:
    """What the file says about itself: title, author, cover."""

    title: str | None = None
    author: str | None = None
    cover: CoverImage | None = None


@dataclass(frozen=True)
class ChapterSpan:
    """A chapter mark: its title, start and end in seconds."""

    title: str
    start: float
    end: float


def cover_image(data: bytes, what: str) -> CoverImage:
    """`data` as a cover: a JPEG or PNG as it is; another image (GIF, WebP, BMP) converted to PNG.

    A usage error when it is not an image PyAV reads, or is too large.
    """
    av = pyav()
    if len(data) > MAX_COVER:
        raise UsageError(f"{what} is larger than {MAX_COVER // 2**20} MiB; use a smaller cover image")
    try:
        with av.open(io.BytesIO(data), "r") as image:
            stream = image.streams.video[0]
            codec = stream.codec_context.name
            if codec in ("mjpeg", "png"):
                return CoverImage(data, codec, stream.codec_context.width, stream.codec_context.height)
            frame = next(image.decode(video=0)).reformat(format="rgb24")
    except (av.error.FFmpegError, IndexError, StopIteration) as exc:
        raise UsageError(f"{what} is not an image speakcli can read ({exc}); use a JPEG or PNG") from None
    encoder = av.CodecContext.create("png", "w")
    encoder.width, encoder.height, encoder.pix_fmt = frame.width, frame.height, "rgb24"
    png = b"".join(bytes(p) for p in [*encoder.encode(frame), *encoder.encode(None)])
    return CoverImage(png, "png", frame.width, frame.height)


def write_audiobook(
    path: Path, parts: Iterable[np.ndarray], rate: int, chapters: Sequence[ChapterSpan] = (), tags: Tags = Tags()
) -> None:
    """Write `parts` (mono float audio at `rate`, one after another) to `path` as AAC in MP4 with its index first,
    chapter marks, tags and cover: under a temporary name, renamed when whole. Only one part is held at a time.
    A .m4b file is marked as an audiobook (its brand, genre and iTunes media kind), as players look for."""
    av = pyav()
    tmp = path.parent / temp_name(path.name)
    try:
        _write(av, tmp, parts, rate, chapters, tags, book=path.suffix.lower() == ".m4b")
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # PyAV's errors from a full disk or a read-only folder are OSErrors too
        raise write_error(f"could not write {path}", exc) from None
    except av.error.FFmpegError as exc:
        raise OutputError(f"could not write {path} ({exc})") from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _write(
    av: Any, tmp: Path, parts: Iterable[np.ndarray], rate: int, chapters: Sequence[ChapterSpan], tags: Tags, book: bool
) -> None:
    out_rate = output_rate(AUDIO_FORMATS["m4a"], rate)
    resampler = Resampler(rate, out_rate) if out_rate != rate else None
    # "mp4", not "ipod" (FFmpeg's muxer for .m4a/.m4b): only it takes a cover; the brand says what the file is.
    # The index moves to the front in a second pass over the file, which FFmpeg makes by reopening it by name.
    options = {"movflags": "+faststart", "brand": "M4B " if book else "M4A "}
    with av.open(str(tmp), "w", format="mp4", container_options=options) as container:
        stream = container.add_stream("aac", rate=out_rate, layout="mono")
        stream.bit_rate = BIT_RATE
        container.metadata.update(_metadata(tags, book))
        container.set_chapters(
            [
                {
                    "id": n,
                    "start": round(c.start * 1000),
                    "end": round(c.end * 1000),
                    "time_base": _MS,
                    "metadata": {"title": c.title},
                }
                for n, c in enumerate(chapters, 1)
            ]
        )
        if tags.cover is not None:
            cover = tags.cover
            picture = container.add_mux_stream(cover.codec, width=cover.width, height=cover.height)
            picture.disposition = av.stream.Disposition.attached_pic
            packet = av.Packet(cover.data)
            packet.stream, packet.pts, packet.dts, packet.time_base = picture, 0, 0, _MS
            container.mux(packet)
        pts = 0
        for part in parts:
            audio = np.clip(np.asarray(part, dtype=np.float32).reshape(-1), -1.0, 1.0)
            pts = _encode(av, container, stream, resampler.process(audio) if resampler else audio, out_rate, pts)
        if resampler is not None:
            _encode(av, container, stream, resampler.flush(), out_rate, pts)
        for packet in stream.encode(None):
            container.mux(packet)


def _encode(av: Any, container: Any, stream: Any, audio: np.ndarray, rate: int, pts: int) -> int:
    if not audio.size:
        return pts
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(audio)[None, :], format="flt", layout="mono")
    frame.sample_rate, frame.pts = rate, pts
    for packet in stream.encode(frame):
        container.mux(packet)
    return pts + audio.size


def _metadata(tags: Tags, book: bool) -> dict[str, str]:
    meta = {}
    if tags.title:
        meta["title"] = meta["album"] = tags.title
    if tags.author:
        meta["artist"] = meta["album_artist"] = tags.author
    if book:
        meta["genre"] = "Audiobook"
        meta["media_type"] = "2"  # iTunes' media kind (stik) 2: an audiobook
    return meta
