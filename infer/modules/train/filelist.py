"""The training file list (`filelist.txt`) and the silence ("mute") entries, as the reference writes them.

One line per segment, fields separated by `|`:
- with pitch:    `<0_gt_wavs>/<n>.wav|<3_featureD>/<n>.npy|<2a_f0>/<n>.wav.npy|<2b-f0nsf>/<n>.wav.npy|<speaker>`
- without pitch: `<0_gt_wavs>/<n>.wav|<3_featureD>/<n>.npy|<speaker>`
Only segments present in every folder are listed. Two mute entries are added so the model learns
silence; the reference ships its mute files, we compute them at run time in `<exp>/mute/` (the same
sub-layout: `0_gt_wavs/mute.wav`, `1_16k_wavs/mute.wav`, `3_featureD/mute.npy`, `2a_f0/mute.wav.npy`,
`2b-f0nsf/mute.wav.npy`) by running the normal feature and pitch stages on 3 s of silence.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.errors import UserInputError
from infer.lib.fileio import atomic_path, atomic_write_text
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger

MUTE_SECONDS = 3.0
MUTE_NAME = "mute.wav"
N_MUTE_ENTRIES = 2

_log = get_logger("filelist")


@dataclass(frozen=True)
class FilelistEntry:
    """One training segment: paths to its audio, features and (with pitch) coarse and Hz pitch."""

    gt_wav: Path
    feature: Path
    f0: Path | None
    f0nsf: Path | None
    speaker: int

    @property
    def use_f0(self) -> bool:
        return self.f0 is not None

    @property
    def is_mute(self) -> bool:
        return self.gt_wav.parent.parent.name == "mute"

    def to_line(self) -> str:
        parts = [str(self.gt_wav), str(self.feature)]
        if self.f0 is not None and self.f0nsf is not None:
            parts += [str(self.f0), str(self.f0nsf)]
        parts.append(str(self.speaker))
        return "|".join(parts)

    @classmethod
    def from_line(cls, line: str, where: str = "filelist") -> FilelistEntry:
        parts = line.strip().split("|")
        try:
            if len(parts) == 5:
                return cls(Path(parts[0]), Path(parts[1]), Path(parts[2]), Path(parts[3]), int(parts[4]))
            if len(parts) == 3:
                return cls(Path(parts[0]), Path(parts[1]), None, None, int(parts[2]))
        except ValueError:
            pass
        raise UserInputError(
            f"{where}: bad line {line.strip()!r}; expected gt_wav|feature|f0|f0nsf|speaker or gt_wav|feature|speaker"
        )


@dataclass(frozen=True)
class FilelistReport:
    """What the filelist stage wrote: entries (segments and mute), segments missing some file."""

    path: str
    use_f0: bool
    n_segments: int
    n_mute: int
    incomplete: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def mute_layout(exp: ExperimentLayout) -> ExperimentLayout:
    """The mute sub-experiment `<exp>/mute/` (same folder names as an experiment)."""
    return ExperimentLayout(exp.mute_dir, exp.version)


def write_mute_audio(exp: ExperimentLayout, sr: int, seconds: float = MUTE_SECONDS) -> ExperimentLayout:
    """Write `seconds` of silence at `sr` (0_gt_wavs) and at 16 kHz (1_16k_wavs) into the mute layout.

    Returns the mute layout; the features and f0 stages then compute its entries.
    """
    import soundfile as sf

    mute = mute_layout(exp)
    mute.make_dirs()
    for folder, rate in ((mute.gt_wavs_dir, sr), (mute.wavs16k_dir, 16000)):
        target = folder / MUTE_NAME
        with atomic_path(target) as tmp:
            sf.write(tmp, np.zeros(int(round(seconds * rate)), dtype=np.int16), rate, subtype="PCM_16", format="WAV")
    return mute


def mute_files_present(exp: ExperimentLayout, use_f0: bool) -> bool:
    """True when all mute files the filelist needs exist."""
    mute = mute_layout(exp)
    files = [mute.gt_wavs_dir / MUTE_NAME, mute.feature_file(MUTE_NAME)]
    if use_f0:
        files += [mute.f0_file(MUTE_NAME), mute.f0nsf_file(MUTE_NAME)]
    return all(f.is_file() for f in files)


def _names(folder: Path, suffix: str) -> set[str]:
    if not folder.is_dir():
        return set()
    return {p.name[: -len(suffix)] for p in folder.iterdir() if p.name.endswith(suffix) and not p.name.startswith(".")}


def segment_entries(exp: ExperimentLayout, use_f0: bool, speaker: int = 0) -> tuple[list[FilelistEntry], list[str]]:
    """Entries for segments present in every folder, sorted by name, and names missing some file."""
    wavs = _names(exp.gt_wavs_dir, ".wav")
    sets = [wavs, _names(exp.feature_dir, ".npy")]
    if use_f0:
        sets += [_names(exp.f0_dir, ".wav.npy"), _names(exp.f0nsf_dir, ".wav.npy")]
    complete = set.intersection(*sets)
    incomplete = sorted(set.union(*sets) - complete)
    entries = []
    for n in sorted(complete):
        wav = f"{n}.wav"
        entries.append(
            FilelistEntry(
                gt_wav=(exp.gt_wavs_dir / wav).resolve(),
                feature=exp.feature_file(wav).resolve(),
                f0=exp.f0_file(wav).resolve() if use_f0 else None,
                f0nsf=exp.f0nsf_file(wav).resolve() if use_f0 else None,
                speaker=speaker,
            )
        )
    return entries, incomplete


def mute_entries(exp: ExperimentLayout, use_f0: bool, speaker: int = 0, n: int = N_MUTE_ENTRIES) -> list[FilelistEntry]:
    """`n` identical entries pointing at the mute files (which must exist)."""
    if not mute_files_present(exp, use_f0):
        raise RuntimeError(f"mute files missing under {exp.mute_dir}: run the features (and f0) stages first")
    mute = mute_layout(exp)
    e = FilelistEntry(
        gt_wav=(mute.gt_wavs_dir / MUTE_NAME).resolve(),
        feature=mute.feature_file(MUTE_NAME).resolve(),
        f0=mute.f0_file(MUTE_NAME).resolve() if use_f0 else None,
        f0nsf=mute.f0nsf_file(MUTE_NAME).resolve() if use_f0 else None,
        speaker=speaker,
    )
    return [e] * n


def write_filelist(
    exp: ExperimentLayout, use_f0: bool, speaker: int = 0, seed: int = 0, with_mute: bool = True
) -> FilelistReport:
    """The filelist stage: write `exp.filelist_path` (segments plus mute entries, shuffled with `seed`)."""
    entries, incomplete = segment_entries(exp, use_f0, speaker)
    if incomplete:
        _log.warning(
            "filelist: %d segment(s) lack a feature or pitch file and are left out: %s",
            len(incomplete),
            ", ".join(incomplete[:10]) + (" ..." if len(incomplete) > 10 else ""),
        )
    if not entries:
        raise UserInputError(
            f"no complete training segments in {exp.root}: preprocessing and feature/pitch extraction "
            "must run first (or every segment failed; see the log above)"
        )
    mutes = mute_entries(exp, use_f0, speaker) if with_mute else []
    lines = [e.to_line() for e in entries + mutes]
    random.Random(seed).shuffle(lines)
    atomic_write_text(exp.filelist_path, "\n".join(lines) + "\n")
    _log.info("filelist: %d segments + %d mute entries -> %s", len(entries), len(mutes), exp.filelist_path)
    return FilelistReport(str(exp.filelist_path), use_f0, len(entries), len(mutes), incomplete)


def read_filelist(path: Path) -> list[FilelistEntry]:
    """Parse a filelist (ours or the reference's); blank lines are skipped."""
    path = Path(path)
    if not path.is_file():
        raise UserInputError(f"filelist {path} is missing: run the filelist stage first")
    text = path.read_text(encoding="utf-8")
    entries = [FilelistEntry.from_line(line, str(path)) for line in text.splitlines() if line.strip()]
    if not entries:
        raise UserInputError(f"filelist {path} is empty")
    kinds = {e.use_f0 for e in entries}
    if len(kinds) != 1:
        raise UserInputError(f"filelist {path} mixes lines with and without pitch")
    return entries
