"""Safe extraction of a user's dataset zip.

`extract_dataset_zip(zip_path, out_dir, limits) -> ZipExtraction`

- nested folders and any audio/video format (by extension, see `infer.lib.audio.AUDIO_EXTENSIONS`;
  ffmpeg decides later whether the content is readable);
- junk is skipped silently (`__MACOSX/`, `._*` AppleDouble files, `.DS_Store`, `.ipynb_checkpoints/`,
  `Thumbs.db`, `desktop.ini`, hidden files) and other non-audio files are skipped and named in the log;
- refused with a `UserInputError` before anything is written: member names with path traversal
  (`..`), absolute paths or drive letters, symbolic links, encrypted members, more than
  `max_members` entries, or a declared uncompressed total above `max_total_bytes`;
- the bytes actually decompressed are counted while extracting, so a zip whose headers lie (a zip
  bomb) is stopped at the limit, and a member that inflates beyond its declared size is refused;
- files are written flat into `out_dir` as `<index>_<safe name>` (unique, never outside `out_dir`).
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from infer.lib.audio import AUDIO_EXTENSIONS
from infer.lib.errors import UserInputError
from infer.lib.log import get_logger

_log = get_logger("dataset")

MiB = 1 << 20
_JUNK_DIRS = {"__macosx", ".ipynb_checkpoints", "__pycache__", ".git", ".svn"}
_JUNK_FILES = {".ds_store", "thumbs.db", "desktop.ini", ".localized"}


@dataclass(frozen=True)
class ZipLimits:
    """Caps that keep a hostile or accidental zip from filling the disk."""

    max_members: int = 10_000
    max_total_bytes: int = 8192 * MiB  # uncompressed, all audio members together
    max_file_bytes: int = 2048 * MiB  # uncompressed, one member

    def __post_init__(self) -> None:
        if self.max_members <= 0 or self.max_total_bytes <= 0 or self.max_file_bytes <= 0:
            raise ValueError("ZipLimits values must be positive")


@dataclass(frozen=True)
class ZipExtraction:
    """The audio files extracted (in the zip's order) and what was skipped, with the reason."""

    files: list[Path]
    skipped: list[tuple[str, str]] = field(default_factory=list)
    total_bytes: int = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["files"] = [str(p) for p in self.files]
        return d


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def _unsafe_reason(name: str) -> str | None:
    if "\x00" in name:
        return "a NUL byte in the name"
    norm = name.replace("\\", "/")
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm):
        return "an absolute path"
    if any(part == ".." for part in norm.split("/")):
        return "a '..' path component (path traversal)"
    return None


def _junk(parts: tuple[str, ...]) -> bool:
    if any(p.lower() in _JUNK_DIRS for p in parts[:-1]):
        return True
    base = parts[-1]
    return base.lower() in _JUNK_FILES or base.startswith("._") or base.startswith(".")


def _safe_name(base: str, limit: int = 80) -> str:
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")[:limit] or "audio"
    ext = re.sub(r"[^A-Za-z0-9]+", "", ext)[:10].lower()
    return f"{stem}.{ext}" if ext else stem


def _classify_member(info: zipfile.ZipInfo, limits: ZipLimits) -> tuple[str, str]:
    """What to do with one zip entry: ("refuse", why), ("ignore", ""), ("skip", why) or ("take", "")."""
    name = info.filename
    reason = _unsafe_reason(name)
    if reason:
        return "refuse", reason
    if _is_symlink(info):
        return "refuse", "a symbolic link"
    if info.is_dir():
        return "ignore", ""
    parts = tuple(p for p in PurePosixPath(name.replace("\\", "/")).parts if p not in ("", "."))
    if not parts:
        return "ignore", ""
    if _junk(parts):
        return "skip", "junk"
    if PurePosixPath(parts[-1]).suffix.lower() not in AUDIO_EXTENSIONS:
        return "skip", "not an audio file"
    if info.flag_bits & 0x1:
        return "refuse", "encrypted (password-protected zips are not supported)"
    if info.file_size > limits.max_file_bytes:
        return "refuse", f"{info.file_size / MiB:.0f} MiB uncompressed, over the per-file limit"
    return "take", ""


def _screen_members(
    zf: zipfile.ZipFile, zip_name: str, limits: ZipLimits
) -> tuple[list[zipfile.ZipInfo], list[tuple[str, str]]]:
    """The audio entries to extract and the skipped `(name, why)` pairs, from the headers alone.

    UserInputError, before anything is written, for too many entries, any unsafe entry (the first 20
    named) or a declared uncompressed total above the limit.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_members:
        raise UserInputError(f"{zip_name} has {len(infos)} entries; at most {limits.max_members} are accepted")
    problems: list[str] = []
    chosen: list[zipfile.ZipInfo] = []
    skipped: list[tuple[str, str]] = []
    declared = 0
    for info in infos:
        action, why = _classify_member(info, limits)
        if action == "refuse":
            problems.append(f"  {info.filename!r}: {why}")
        elif action == "skip":
            skipped.append((info.filename, why))
        elif action == "take":
            declared += info.file_size
            chosen.append(info)
    if problems:
        raise UserInputError(f"{zip_name} was refused, it contains unsafe entries:\n" + "\n".join(problems[:20]))
    if declared > limits.max_total_bytes:
        raise UserInputError(
            f"{zip_name} would unpack to {declared / MiB:.0f} MiB; the limit is {limits.max_total_bytes / MiB:.0f} MiB"
        )
    return chosen, skipped


def _log_skipped(skipped: list[tuple[str, str]]) -> None:
    """Name each skipped non-audio entry in the log; junk entries only as a count."""
    for name, why in skipped:
        if why != "junk":
            _log.info("zip: skipped %r (%s)", name, why)  # repr: a name cannot break the log line
    n_junk = sum(1 for _, why in skipped if why == "junk")
    if n_junk:
        _log.info("zip: skipped %d junk entries (__MACOSX, .DS_Store, hidden files, ...)", n_junk)


def _copy_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, dst: Path, zip_name: str, limits: ZipLimits, total: int
) -> int:
    """Copy one entry to `dst`, counting the bytes that actually inflate; returns `total` plus them.

    UserInputError when the entry inflates beyond its declared size or the per-file limit, or the
    running total beyond the total limit (a zip whose headers lie).
    """
    written = 0
    with zf.open(info) as src, open(dst, "wb") as f:
        while block := src.read(1 << 20):
            written += len(block)
            total += len(block)
            if written > info.file_size or written > limits.max_file_bytes:
                raise UserInputError(f"{zip_name}: {info.filename!r} inflates beyond its declared size (zip bomb?)")
            if total > limits.max_total_bytes:
                raise UserInputError(
                    f"{zip_name} unpacks to more than {limits.max_total_bytes / MiB:.0f} MiB (zip bomb?)"
                )
            f.write(block)
    return total


def _extract_members(
    zf: zipfile.ZipFile, zip_name: str, chosen: list[zipfile.ZipInfo], out_dir: Path, limits: ZipLimits
) -> tuple[list[Path], int]:
    """Write `chosen` flat into `out_dir` as `<index>_<safe name>`: (files, bytes written).

    On any failure every file started is removed; a damaged zip becomes a UserInputError.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    width = max(3, len(str(len(chosen) - 1)))
    files: list[Path] = []
    total = 0
    try:
        for i, info in enumerate(chosen):
            base = PurePosixPath(info.filename.replace("\\", "/")).name
            dst = out_dir / f"{i:0{width}d}_{_safe_name(base)}"
            files.append(dst)
            total = _copy_member(zf, info, dst, zip_name, limits, total)
    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
        for p in files:
            p.unlink(missing_ok=True)
        raise UserInputError(f"{zip_name} is damaged ({e}); re-create the zip and upload it again") from e
    except BaseException:
        for p in files:
            p.unlink(missing_ok=True)
        raise
    return files, total


def extract_dataset_zip(
    zip_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], limits: ZipLimits | None = None
) -> ZipExtraction:
    """Extract the audio files of `zip_path` into `out_dir` (flat, safely); see the module docstring."""
    limits = limits or ZipLimits()
    zip_path, out_dir = Path(zip_path), Path(out_dir)
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as e:
        raise UserInputError(f"{zip_path.name} is not a valid zip file ({e}); upload a .zip of audio files") from e
    with zf:
        chosen, skipped = _screen_members(zf, zip_path.name, limits)
        _log_skipped(skipped)
        if not chosen:
            raise UserInputError(
                f"{zip_path.name} contains no audio files (looked for {', '.join(sorted(AUDIO_EXTENSIONS)[:8])}, ...)"
            )
        files, total = _extract_members(zf, zip_path.name, chosen, out_dir, limits)
    _log.info("zip: %d audio file(s), %.1f MiB from %s", len(files), total / MiB, zip_path.name)
    return ZipExtraction(files=files, skipped=skipped, total_bytes=total)
