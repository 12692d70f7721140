"""The data check stage: is there speech, and is it one voice? Run on the user's files before any
weights are fetched or any long work starts.

`check_data(files, keep_other_speakers=False) -> DataCheckReport`

1. every file is probed (one `UserInputError` naming every unreadable file) and decoded to mono
   16 kHz (libsndfile + soxr for WAV/FLAC/AIFF, ffmpeg for the rest), two threads, `BATCH_S` (20
   minutes) of audio at a time: each batch's speech regions and embeddings are kept, its samples
   dropped, so memory does not grow with the dataset (a single long file is decoded whole);
2. speech presence (`infer.lib.vad`, Silero VAD): speech regions and seconds per file. A file with
   under `MIN_FILE_SPEECH_S` (1 s) of speech (music, noise, silence, a wrong file) is left out with
   a warning naming it. Under `MIN_SPEECH_S` (30 s) of speech in all, the job is refused with the
   figure. The regions go on to preprocessing, which drops segments that hold little speech
   (`infer.modules.train.preprocess`), so a voice file's music intro does not become training data;
3. one speaker (`infer.lib.speaker`, resemblyzer): an embedding of each file's speech, the dataset's
   own centre (its main voice, see `main_speaker`), and each file's cosine similarity to it. A file
   below `OTHER_SPEAKER` (0.70) is another person: named in a warning and left out unless
   `keep_other_speakers`; between 0.70 and `UNSURE_SPEAKER` (0.80) it is kept with a warning. A file
   with more than two minutes of speech (an interview, a podcast) is also judged a minute of speech
   at a time (`units`): a minute below 0.70 is named and its speech taken out of the file's regions,
   so preprocessing drops its segments; the file's embedding is the mean of its minutes'.

Cost on CPU (joe_10min, 40 files, 601 s, one thread): decoding 0.13, VAD 0.55, embeddings 0.48 CPU
seconds; see bench/bench_datacheck.py.

`dataset_card(preprocess_report, check)` merges this report into the preprocessing report for the
model card (`dataset.files[*].speech_s`, `.speaker_similarity`, `.other_speaker`, `.excluded`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.errors import UserInputError
from infer.lib.log import get_logger

_log = get_logger("datacheck")

SR = 16000
UNIT_S = 60.0  # a file with more than two of these of speech is judged a minute of speech at a time
MIN_FILE_SPEECH_S = 1.0
MIN_SPEECH_S = 30.0
DECODE_THREADS = 2
BATCH_S = 1200.0  # seconds of audio decoded at a time (77 MB at 16 kHz): memory does not grow with the dataset

NO_SPEECH = "no speech"
OTHER_VOICE = "another speaker"


@dataclass(frozen=True)
class FileCheck:
    """One input file: its speech and how alike its voice is to the dataset's.

    index: position in the input list. speech: speech regions in seconds from the file's start.
    speaker_similarity: cosine similarity to the dataset's centre (None: no speech to embed).
    other_speaker: below `OTHER_SPEAKER`. excluded: why it is left out of training (None: trained on).
    train_index: its position among the files handed to preprocessing (None when excluded).
    other_speaker_s: speech of a long file left out as another voice, a minute at a time (see `units`);
    `speech` then lacks those minutes, so preprocessing drops their segments.
    minute_similarities: a long file's per-minute similarities (empty for files of up to 2 minutes).
    """

    index: int
    name: str
    duration_s: float
    speech_s: float
    speech: tuple[tuple[float, float], ...]
    speaker_similarity: float | None = None
    other_speaker: bool = False
    excluded: str | None = None
    train_index: int | None = None
    other_speaker_s: float = 0.0
    minute_similarities: tuple[float, ...] = ()

    def to_dict(self, regions: bool = True) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if not regions:
            d.pop("speech")
        else:
            d["speech"] = [list(r) for r in self.speech]
        return d


@dataclass(frozen=True)
class DataCheckReport:
    """The stage's report: per file, totals, the voice's centre embedding, warnings and timings."""

    files: list[FileCheck]
    speech_s: float  # speech in the files kept for training
    total_duration_s: float
    keep_other_speakers: bool
    centre: list[float] | None  # the training voice's embedding (256 floats)
    main_speaker_share: float  # of all speech, the main voice's group
    thresholds: dict[str, float]
    seconds: dict[str, float]  # decode, vad, speaker
    warnings: list[str] = field(default_factory=list)

    @property
    def kept(self) -> list[FileCheck]:
        return [f for f in self.files if f.excluded is None]

    def centre_array(self) -> np.ndarray | None:
        return None if self.centre is None else np.asarray(self.centre, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["files"] = [f.to_dict() for f in self.files]
        return d


def _decode(files: Sequence[Path]) -> list[np.ndarray]:
    from infer.lib.audio import load_audio

    with ThreadPoolExecutor(max_workers=max(1, min(DECODE_THREADS, len(files)))) as pool:
        return list(pool.map(lambda f: load_audio(f, SR), files))


def _batches(durations: Sequence[float], limit_s: float = BATCH_S) -> list[list[int]]:
    """File indices in consecutive groups of at most `limit_s` seconds of audio (a longer file alone)."""
    out: list[list[int]] = [[]]
    have = 0.0
    for i, d in enumerate(durations):
        if out[-1] and have + d > limit_s:
            out.append([])
            have = 0.0
        out[-1].append(i)
        have += d
    return [b for b in out if b]


def units(regions: Sequence[tuple[int, int]], unit_s: float = UNIT_S) -> list[list[tuple[int, int]]]:
    """A file's speech regions (samples at 16 kHz) in consecutive groups of about `unit_s` seconds of
    speech (one group when there are at most two units' worth; a region longer than a unit is split)."""
    total = sum(e - s for s, e in regions)
    step = int(unit_s * SR)
    if total <= 2 * step:
        return [list(regions)] if regions else []
    out: list[list[tuple[int, int]]] = [[]]
    have = 0
    for s, e in regions:
        while s < e:
            take = min(e - s, step - have)
            out[-1].append((s, s + take))
            have += take
            s += take
            if have >= step:
                out.append([])
                have = 0
    if not out[-1]:
        out.pop()
    if len(out) > 1 and sum(e - s for s, e in out[-1]) < step / 2:  # a short tail joins the unit before
        out[-2] += out.pop()
    return out


Region = tuple[int, int]  # a speech region: start and end sample at 16 kHz


@dataclass
class _Scan:
    """What the decoding pass keeps of every file; the samples themselves are dropped batch by batch.

    n_samples: decoded length at 16 kHz. regions: speech regions (samples). file_units: the speech of
    each file with enough of it, in `units`. flat: (file, unit's regions) in embedding order, with
    unit_embs their embeddings (256 floats each). seconds: wall time of decode, vad and speaker.
    """

    n_samples: list[int]
    regions: list[list[Region]]
    file_units: dict[int, list[list[Region]]] = field(default_factory=dict)
    flat: list[tuple[int, list[Region]]] = field(default_factory=list)
    unit_embs: list[np.ndarray] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "vad": 0.0, "speaker": 0.0})


@dataclass(frozen=True)
class _Voices:
    """The dataset's main voice and each file's likeness to it (all empty when no file has speech).

    sims: file -> similarity to the centre. minute_sims: a long file's per-unit similarities.
    other_regions: a long file's regions (pieces cut by `units`) heard as another voice, to drop.
    group: the files in the main voice's group; group_share: its share of all speech.
    """

    sims: dict[int, float] = field(default_factory=dict)
    minute_sims: dict[int, list[float]] = field(default_factory=dict)
    other_regions: dict[int, set[Region]] = field(default_factory=dict)
    centre: np.ndarray | None = None
    group: list[int] = field(default_factory=list)
    group_share: float = 0.0


def check_data(
    files: Sequence[str | Path],
    keep_other_speakers: bool = False,
    detector: Any = None,
    encoder: Any = None,
    min_file_speech_s: float = MIN_FILE_SPEECH_S,
    min_speech_s: float = MIN_SPEECH_S,
) -> DataCheckReport:
    """Speech and speaker of every file; see the module docstring. Raises `UserInputError` when too
    little speech is left. `detector`/`encoder`: a `SpeechDetector`/`SpeakerEncoder` (default: the
    process's shared ones)."""
    from infer.lib.audio import probe_all
    from infer.lib.vad import get_speech_detector

    paths = [Path(f) for f in files]
    if not paths:
        raise UserInputError("no audio files to train on: give audio URLs or a dataset zip")
    infos = probe_all(paths)  # one error naming every unreadable file
    scan = _scan(paths, infos, detector or get_speech_detector(), encoder, min_file_speech_s)
    t0 = time.monotonic()
    voices = _voices(scan, keep_other_speakers)
    scan.seconds["speaker"] += time.monotonic() - t0
    checks = _file_checks(paths, scan, voices, keep_other_speakers, min_file_speech_s)
    report = _report(checks, scan, voices, keep_other_speakers, min_file_speech_s, min_speech_s)
    log_report(report)
    _refuse_too_little_speech(report, len(paths), min_speech_s)
    return report


def _scan(paths: Sequence[Path], infos: Sequence[dict], detector: Any, encoder: Any, min_file_speech_s: float) -> _Scan:
    """Decode every file, find its speech and embed the speech of files with at least `min_file_speech_s`
    of it, `BATCH_S` of audio at a time. The encoder is loaded only when some file has speech."""
    from infer.lib import speaker as spk
    from infer.lib.vad import speech_seconds

    scan = _Scan(n_samples=[0] * len(paths), regions=[[] for _ in paths])
    times = scan.seconds
    for batch in _batches([float(i.get("duration_s") or 0.0) for i in infos]):
        t0 = time.monotonic()
        audios = _decode([paths[i] for i in batch])
        t1 = time.monotonic()
        found = detector.speech(audios)
        t2 = time.monotonic()
        pieces = []
        for i, a, r in zip(batch, audios, found, strict=True):
            scan.n_samples[i], scan.regions[i] = len(a), r
            if speech_seconds(r) >= min_file_speech_s:
                scan.file_units[i] = units(r)
                for u in scan.file_units[i]:
                    scan.flat.append((i, u))
                    pieces.append(np.concatenate([a[s:e] for s, e in u]))
        if pieces:
            encoder = encoder or spk.get_speaker_encoder()
            scan.unit_embs += encoder.embed(pieces)
        del audios, pieces
        times["decode"] += t1 - t0
        times["vad"] += t2 - t1
        times["speaker"] += time.monotonic() - t2
    return scan


def _voices(scan: _Scan, keep_other_speakers: bool) -> _Voices:
    """The main voice from files and long files' minutes alike (a mixed file does not blur the centre),
    each file's similarity to it, and the minutes of long files heard as another voice."""
    from infer.lib import speaker as spk

    if not scan.file_units:
        return _Voices()
    has_speech = sorted(scan.file_units)
    flat, unit_embs = scan.flat, scan.unit_embs
    unit_w = [sum(e - s for s, e in u) for _, u in flat]
    of_file: dict[int, list[int]] = {}
    for j, (i, _) in enumerate(flat):
        of_file.setdefault(i, []).append(j)
    embs = [
        spk.mean_embedding(np.stack([unit_embs[j] for j in of_file[i]]), [unit_w[j] for j in of_file[i]])
        for i in has_speech
    ]
    centre, g = spk.main_speaker(unit_embs, unit_w)
    minute_sims: dict[int, list[float]] = {}
    other_regions: dict[int, set[Region]] = {}
    for j, (i, u) in enumerate(flat):
        if len(scan.file_units[i]) > 1:
            sim_u = round(spk.similarity(unit_embs[j], centre), 4)
            minute_sims.setdefault(i, []).append(sim_u)
            if sim_u < spk.OTHER_SPEAKER and not keep_other_speakers:
                other_regions.setdefault(i, set()).update(u)
    return _Voices(
        sims={i: round(spk.similarity(embs[k], centre), 4) for k, i in enumerate(has_speech)},
        minute_sims=minute_sims,
        other_regions=other_regions,
        centre=centre,
        group=sorted({flat[j][0] for j in g}),
        group_share=sum(unit_w[j] for j in g) / max(1, sum(unit_w)),
    )


def _file_checks(
    paths: Sequence[Path], scan: _Scan, voices: _Voices, keep_other_speakers: bool, min_file_speech_s: float
) -> list[FileCheck]:
    """Every file's verdict, in input order, numbering the kept ones for preprocessing."""
    from infer.lib.speaker import OTHER_SPEAKER
    from infer.lib.vad import speech_seconds

    checks: list[FileCheck] = []
    n_train = 0
    for i, f in enumerate(paths):
        regions = scan.regions[i]
        speech_s = speech_seconds(regions)
        sim = voices.sims.get(i)
        other = sim is not None and sim < OTHER_SPEAKER
        if speech_s < min_file_speech_s:
            why: str | None = NO_SPEECH
        elif other and not keep_other_speakers:
            why = OTHER_VOICE
        else:
            why = None
        drop = voices.other_regions.get(i, set()) if why is None else set()
        kept_regions = _split(regions, drop) if drop else regions
        if drop and speech_seconds(kept_regions) < min_file_speech_s:
            why, kept_regions = OTHER_VOICE, regions
        checks.append(
            FileCheck(
                index=i,
                name=f.name,
                duration_s=round(scan.n_samples[i] / SR, 3),
                speech_s=round(speech_s, 3),
                speech=tuple((round(s / SR, 3), round(e / SR, 3)) for s, e in kept_regions),
                speaker_similarity=sim,
                other_speaker=other,
                excluded=why,
                train_index=None if why else n_train,
                other_speaker_s=round(speech_s - speech_seconds(kept_regions), 3),
                minute_similarities=tuple(voices.minute_sims.get(i, ())),
            )
        )
        n_train += why is None
    return checks


def _report(
    checks: list[FileCheck],
    scan: _Scan,
    voices: _Voices,
    keep_other_speakers: bool,
    min_file_speech_s: float,
    min_speech_s: float,
) -> DataCheckReport:
    """The stage's report from the files' verdicts, with its warnings; figures rounded."""
    from infer.lib.speaker import OTHER_SPEAKER, UNSURE_SPEAKER

    return DataCheckReport(
        files=checks,
        speech_s=round(sum(c.speech_s - c.other_speaker_s for c in checks if c.excluded is None), 3),
        total_duration_s=round(sum(c.duration_s for c in checks), 3),
        keep_other_speakers=keep_other_speakers,
        centre=None if voices.centre is None else [round(float(v), 6) for v in voices.centre],
        main_speaker_share=round(voices.group_share, 3),
        thresholds={
            "min_file_speech_s": min_file_speech_s,
            "min_speech_s": min_speech_s,
            "other_speaker": OTHER_SPEAKER,
            "unsure_speaker": UNSURE_SPEAKER,
        },
        seconds={k: round(v, 3) for k, v in scan.seconds.items()},
        warnings=_warnings(checks, keep_other_speakers, voices.group, voices.group_share, min_file_speech_s),
    )


def _refuse_too_little_speech(report: DataCheckReport, n_files: int, min_speech_s: float) -> None:
    """Raise `UserInputError` when the files kept hold under `min_speech_s` of speech."""
    if report.speech_s < min_speech_s:
        raise UserInputError(
            f"only {report.speech_s:.1f} s of speech found in the {n_files} file(s) to train on "
            f"({report.total_duration_s:.1f} s of audio in all); at least {min_speech_s:.0f} s of speech are needed, "
            "10 minutes or more for a good voice. "
            + ("; ".join(report.warnings[:3]) + ". " if report.warnings else "")
            + "Give more recordings of the voice."
        )


def _split(regions: Sequence[tuple[int, int]], drop: set[tuple[int, int]]) -> list[tuple[int, int]]:
    """`regions` less the pieces in `drop` (pieces `units` cut from them), merged back where adjacent."""
    out: list[tuple[int, int]] = []
    for s, e in regions:
        cuts = sorted(p for p in drop if s <= p[0] and p[1] <= e)
        pos = s
        for a, b in cuts:
            if a > pos:
                out.append((pos, a))
            pos = max(pos, b)
        if pos < e:
            out.append((pos, e))
    return out


def _names(checks: Sequence[FileCheck], limit: int = 8) -> str:
    shown = ", ".join(
        f"{c.name} ({c.speaker_similarity:.2f})" if c.speaker_similarity is not None else c.name for c in checks[:limit]
    )
    return shown + (f" and {len(checks) - limit} more" if len(checks) > limit else "")


def _warnings(
    checks: Sequence[FileCheck],
    keep_other: bool,
    group: Sequence[int],
    group_share: float,
    min_file_speech_s: float,
) -> list[str]:
    from infer.lib.speaker import OTHER_SPEAKER, UNSURE_SPEAKER

    out = []
    quiet = [c for c in checks if c.excluded == NO_SPEECH]
    if quiet:
        out.append(
            f"{len(quiet)} file(s) with under {min_file_speech_s:g} s of speech (music, noise or silence?) "
            "left out: " + ", ".join(f"{c.name} ({c.speech_s:.1f} s speech)" for c in quiet[:8])
        )
    other = [c for c in checks if c.other_speaker]
    if other:
        what = "kept (keep_other_speakers is on)" if keep_other else "left out (keep_other_speakers keeps them)"
        out.append(
            f"{len(other)} file(s) sound like another speaker (voice similarity to the dataset's main voice "
            f"below {OTHER_SPEAKER:.2f}), {what}: {_names(other)}"
        )
    partly = [c for c in checks if c.other_speaker_s > 0 and c.excluded is None]
    for c in partly:
        low = [f"{m + 1}" for m, v in enumerate(c.minute_similarities) if v < OTHER_SPEAKER]
        out.append(
            f"{c.name}: minute(s) {', '.join(low)} of its speech ({c.other_speaker_s:.0f} s) sound like another "
            "speaker and are left out (keep_other_speakers keeps them)"
        )
    unsure = [
        c for c in checks if c.speaker_similarity is not None and OTHER_SPEAKER <= c.speaker_similarity < UNSURE_SPEAKER
    ]
    if unsure:
        out.append(
            f"{len(unsure)} file(s) sound only somewhat like the main voice (similarity {OTHER_SPEAKER:.2f}-"
            f"{UNSURE_SPEAKER:.2f}: another speaker, or very different recording conditions), kept: {_names(unsure)}"
        )
    if group and group_share <= 0.5:
        out.append(
            "no single voice holds most of the speech: this looks like several speakers; training on the "
            f"largest group ({len(group)} file(s)). A voice model needs recordings of one voice"
        )
    return out


def log_report(r: DataCheckReport) -> None:
    kept = r.kept
    _log.info(
        "speech: %.1f s of speech in %.1f s of audio, %d of %d file(s) kept (decode %.1fs, VAD %.1fs, speaker %.1fs)",
        r.speech_s, r.total_duration_s, len(kept), len(r.files),
        r.seconds.get("decode", 0), r.seconds.get("vad", 0), r.seconds.get("speaker", 0),
    )  # fmt: skip
    for f in r.files:
        sim = f"voice similarity {f.speaker_similarity:.2f}" if f.speaker_similarity is not None else "no voice"
        minutes = ""
        if f.minute_similarities:
            minutes = " (by minute of speech: " + ", ".join(f"{v:.2f}" for v in f.minute_similarities) + ")"
            if f.other_speaker_s and not f.excluded:
                minutes += f", {f.other_speaker_s:.0f} s of another speaker LEFT OUT"
        _log.info(
            "  %s: %.1f s speech of %.1f s, %s%s%s",
            f.name, f.speech_s, f.duration_s, sim, minutes, f" LEFT OUT: {f.excluded}" if f.excluded else "",
        )  # fmt: skip
    for w in r.warnings:
        _log.warning("dataset: %s", w)


def train_files(report: DataCheckReport, files: Sequence[str | Path]) -> list[Path]:
    """The files to train on (in order), from the input list the report was made for."""
    if len(files) != len(report.files):
        raise ValueError(f"the check saw {len(report.files)} file(s), {len(files)} given")
    return [Path(files[c.index]) for c in report.kept]


def train_speech(report: DataCheckReport) -> list[tuple[tuple[float, float], ...]]:
    """The speech regions (seconds) of the files to train on, in `train_files` order."""
    return [c.speech for c in report.kept]


def dataset_card(preprocess: dict[str, Any] | None, check: DataCheckReport | None) -> dict[str, Any] | None:
    """The model card's `dataset`: the preprocessing report with the check's figures merged in.

    Every input file is listed: those trained on with their preprocessing figures, those left out
    with `excluded` saying why. `speech_s` (dataset level) is the speech in the segments trained on.
    """
    if check is None:
        return preprocess
    out = dict(preprocess or {})
    pre_files = list(out.get("files") or [])
    files = []
    for c in check.files:
        d = dict(pre_files[c.train_index]) if c.train_index is not None and c.train_index < len(pre_files) else {}
        d.update(c.to_dict(regions=False))
        files.append(d)
    out["files"] = files
    if out.get("speech_s") is None:
        out["speech_s"] = check.speech_s
    out["n_files_given"] = len(check.files)
    out["excluded_files"] = [{"name": c.name, "reason": c.excluded} for c in check.files if c.excluded]
    out["speaker"] = {
        "main_speaker_share": check.main_speaker_share,
        "keep_other_speakers": check.keep_other_speakers,
        "thresholds": check.thresholds,
        "encoder": "resemblyzer 0.1.4 GE2E (cosine similarity to the dataset's main voice)",
    }
    out["check_warnings"] = list(check.warnings)
    return out
