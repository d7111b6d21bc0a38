"""Find voices: a voices-dir name, an audio file or folder, or an engine's built-in speaker."""

from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from speakcli import tomltext
from speakcli.engines.base import Voice
from speakcli.errors import Hint, OutputError, VoiceError

DEFAULT_VOICE = "joe"
# File names taken for reference clips: the formats libsndfile (soundfile) reads, MP3 and Opus included.
AUDIO_EXTS = (
    ".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".aifc", ".au", ".caf", ".w64", ".rf64"
)  # fmt: skip
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$")


def bundled_voices_dir() -> Path | None:
    """The voices shipped with speakcli: inside the wheel, or the repo's voices/ in a source checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "_voices", here.parents[1] / "voices"):
        if candidate.is_dir():
            return candidate
    return None


def validate_name(name: str) -> str:
    """A voice name safe to use as one folder name inside the voices dir."""
    if not _NAME_RE.match(name) or ".." in name or name.strip() != name:
        raise VoiceError(
            f"voice name {name!r} is not allowed; use letters, digits, '.', '_', '-' or spaces "
            "(at most 64, no path separators, no '..')"
        )
    suffix = Path(name).suffix
    if suffix.lower() in AUDIO_EXTS:
        # `--voice x.wav` means a file, so a voice named so could never be selected.
        raise VoiceError(
            f"voice name {name!r} ends in the audio file extension {suffix!r}, so choosing it would pick a "
            f"file; name it {name[: -len(suffix)]!r}"
        )
    return name


def _clips_in(folder: Path) -> tuple[Path, ...]:
    return tuple(sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTS and p.is_file()))


def _meta(folder: Path) -> dict[str, Any]:
    path = folder / "voice.toml"
    if not path.is_file():
        return {}
    try:
        return tomltext.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise VoiceError(f"{path} is not valid TOML ({exc}); fix or remove it") from None


def _from_folder(name: str, folder: Path) -> Voice:
    clips = _clips_in(folder)
    if not clips:
        raise VoiceError(
            f"voice folder {folder} has no audio clips; add one or more audio files ({', '.join(AUDIO_EXTS[:6])}...)"
        )
    meta = _meta(folder)
    return Voice(name=name, clips=clips, language=meta.get("language"), meta=meta)


@dataclass(frozen=True)
class VoiceLibrary:
    """The user's voices dir (searched first) and the bundled voices."""

    user_dir: Path

    def dirs(self) -> list[Path]:
        bundled = bundled_voices_dir()
        return [self.user_dir] + ([bundled] if bundled else [])

    def find(self, name: str) -> Voice | None:
        validate_name(name)
        for base in self.dirs():
            folder, single = base / name, None
            if folder.is_dir():
                return _from_folder(name, folder)
            for ext in AUDIO_EXTS:
                if (base / f"{name}{ext}").is_file():
                    single = base / f"{name}{ext}"
                    return Voice(name=name, clips=(single,))
        return None

    def resolve(self, spec: str | None) -> Voice | None:
        """None means the engine's default voice; a path means clips; else a library name or built-in speaker."""
        if spec is None or spec == "":
            return None
        path = Path(spec).expanduser()
        looks_like_path = "/" in spec or "\\" in spec or path.suffix.lower() in AUDIO_EXTS
        # A bare name of an existing file is that file (as ./NAME is), unless a saved voice has that name.
        if looks_like_path or (path.is_file() and self._find_quietly(spec) is None):
            if path.is_file():
                return Voice(name=path.stem, clips=(path.resolve(),))
            if path.is_dir():
                return _from_folder(path.name, path.resolve())
            raise VoiceError(f"voice file or folder {spec!r} does not exist")
        found = self.find(spec)
        if found is not None:
            return found
        return Voice(name=spec, speaker=spec)

    def _find_quietly(self, name: str) -> Voice | None:
        try:
            return self.find(name)
        except VoiceError:
            return None

    def default(self) -> Voice | None:
        """The bundled default voice, for engines that need reference audio."""
        try:
            return self.find(DEFAULT_VOICE)
        except VoiceError:
            return None

    def all(self) -> list[VoiceEntry]:
        """Every voice in the voices dirs, yours shadowing bundled ones of the same name; broken ones say why."""
        seen: dict[str, VoiceEntry] = {}
        for base in self.dirs():
            if not base.is_dir():
                continue
            for item in sorted(base.iterdir()):
                if item.name.startswith("."):
                    continue
                name = item.stem if item.is_file() else item.name
                if item.is_file() and item.suffix.lower() not in AUDIO_EXTS:
                    continue
                if name in seen:
                    continue
                try:
                    validate_name(name)
                    voice = _from_folder(name, item) if item.is_dir() else Voice(name=name, clips=(item,))
                    seen[name] = VoiceEntry(name, base, voice, None)
                except VoiceError as exc:
                    seen[name] = VoiceEntry(name, base, None, str(exc))
        return sorted(seen.values(), key=lambda e: e.name)

    def check_new(self, name: str, force: bool = False) -> Path:
        """The folder a new voice `name` would take; refuses a bad name, or an existing voice unless `force`."""
        validate_name(name)
        target = self.user_dir / name
        if target.exists() and not force:
            raise _exists(name, self.user_dir)
        return target

    def stage(
        self, name: str, clips: list[Path], meta: dict[str, str], force: bool = False, max_seconds: float | None = None
    ) -> StagedVoice:
        """Build `<voices dir>/<name>/` in a hidden temp folder: the clips (each cut to its first `max_seconds`)
        and a voice.toml. Nothing shows in the voices dir until `commit()`; `discard()` removes every trace."""
        target = self.check_new(name, force)
        try:
            self.user_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.user_dir))
        except OSError as exc:
            raise OutputError(f"could not save voice {name!r} in {self.user_dir}: {exc}") from None
        staged = StagedVoice(name, staging, target, force)
        try:
            used: set[str] = set()
            for i, clip in enumerate(clips):
                staged.add_clip(clip, i, used, max_seconds)
            (staging / "voice.toml").write_text(
                "".join(f"{k} = {_toml_str(v)}\n" for k, v in meta.items()), encoding="utf-8"
            )
            staged.voice = _from_folder(name, staging)
        except OSError as exc:
            staged.discard()
            raise OutputError(f"could not save voice {name!r} in {self.user_dir}: {exc}") from None
        except BaseException:
            staged.discard()
            raise
        return staged

    def save(
        self, name: str, clips: list[Path], meta: dict[str, str], force: bool = False, max_seconds: float | None = None
    ) -> Voice:
        """Copy clips into `<voices dir>/<name>/` with a voice.toml; the folder appears whole or not at all."""
        staged = self.stage(name, clips, meta, force, max_seconds)
        try:
            return staged.commit()
        finally:
            staged.discard()


@dataclass
class StagedVoice:
    """A voice built in a hidden folder beside its target; `commit` renames it into place."""

    name: str
    staging: Path
    target: Path
    force: bool
    voice: Voice = field(default_factory=lambda: Voice(name=""))

    def add_clip(self, clip: Path, index: int, used: set[str], max_seconds: float | None) -> None:
        """Copy `clip` in; one longer than `max_seconds` (or not named as audio) is stored cut to what is used."""
        from speakcli.refaudio import clip_info, store_used_part, stored_suffix

        rate, _, frames = clip_info(clip)
        whole = clip.suffix.lower() in AUDIO_EXTS and (max_seconds is None or frames <= max_seconds * rate)
        dest = f"{clip.stem}{clip.suffix if whole else stored_suffix(clip)}"
        if dest in used:
            dest = f"{index:02d}-{dest}"
        used.add(dest)
        if whole:
            shutil.copyfile(clip, self.staging / dest)
        else:
            store_used_part(clip, self.staging / dest, max_seconds if max_seconds is not None else frames / rate)

    def commit(self) -> Voice:
        """Put the voice in place (replacing the old one under force) and return it as found there."""
        target, name = self.target, self.name
        try:
            if target.exists() and not self.force:
                raise _exists(name, target.parent)
            old = None
            if target.exists():
                old = target.with_name(f".{name}.old")
                shutil.rmtree(old, ignore_errors=True)
                target.rename(old)
            try:
                self.staging.rename(target)
            except OSError as exc:
                if old is not None:  # put the replaced voice back: --force must not lose it on a failure
                    old.rename(target)
                if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) and not self.force:
                    raise _exists(name, target.parent) from None  # another clone of this name got there first
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:
            raise OutputError(f"could not save voice {name!r} in {target.parent}: {exc}") from None
        return _from_folder(name, target)

    def discard(self) -> None:
        """Remove the staging folder (nothing to do after commit)."""
        with contextlib.suppress(OSError):
            if self.staging.exists():
                shutil.rmtree(self.staging)


@dataclass(frozen=True)
class VoiceEntry:
    name: str
    source: Path
    voice: Voice | None
    error: str | None


def _exists(name: str, folder: Path) -> OutputError:
    return OutputError(f"voice {name!r} already exists in {folder}", hint=Hint.FORCE, code="conflict")


def _toml_str(value: str) -> str:
    # JSON string escapes are valid TOML basic-string escapes, control characters included.
    return json.dumps(value, ensure_ascii=False)
