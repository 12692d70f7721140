"""The preprocessing stage: user audio files -> training segments, and the dataset report.

`preprocess(files, exp, sr, segment_s=3.7, n_workers=None, enhancer=None, trim_silence=True) -> PreprocessReport`

1. every file is probed first (libsndfile for WAV/AIFF/FLAC, ffprobe for the rest); unreadable files
   stop the stage with one `UserInputError` listing them all (before any long work);
2. optional, in this process (one model): MossFormer2 enhancement (`enhancer`, an `AudioEnhancer`);
   files are decoded, resampled to the training rate, enhanced, and handed on as float WAVs in a
   temporary folder;
3. in a pool of `n_workers` threads, per file (the reference preprocessing, our own code):
   decoded at the source rate and mixed to mono (`infer.lib.audio.decode_blocks`) -> clipping measured
   on the source samples -> resampled to `sr` (soxr HQ) -> optional leading/trailing silence trim ->
   48 Hz 5th-order Butterworth high-pass (`scipy.signal.lfilter`) -> the slicer (-42 dB, 1500 ms
   minimum length, 400 ms minimum interval, 15 ms hop, 500 ms maximum silence kept) -> segments of
   `per` seconds (`segment_s`: 3.7 s, or the reference's 3.0 s for jobs on fp32-only GPUs and cards of
   <= 4 GB, `infer.lib.device.preprocess_segment_seconds`) every `per - 0.3` s, the rest of a slice as
   a last shorter segment -> a segment whose peak exceeds 2.5 is dropped -> with `speech` regions (the
   data check's Silero VAD, `infer.modules.train.datacheck`), a segment less than `MIN_SEGMENT_SPEECH`
   (25%) speech is dropped, so music, noise or silence never becomes a training segment -> loudness
   normalisation `y = x / peak * (0.9 * 0.75) + 0.25 * x` -> written as 16-bit PCM at `sr` to
   `exp.gt_wavs_dir` and resampled to 16 kHz (`infer.lib.audio.resample`, as `librosa.resample`) to
   `exp.wavs16k_dir`, named `<file_idx>_<seg_idx>.wav` (file_idx = position in `files`; seg_idx counts
   the file's segments from 0 in order, a dropped segment leaving its number unused; the reference
   reuses a number and overwrites a segment, we keep every segment);
4. the `PreprocessReport` (per file: duration, source rate, clipping, silence, segments kept and
   dropped, speech in the kept segments) is logged, written to `exp.reports_dir/preprocess.json`, and
   checked: under `warn_speech_s` (10 minutes) of speech (of kept audio without `speech`) a warning,
   under `min_speech_s` of kept audio a `UserInputError`.

Memory does not grow with a recording's length: each file is streamed in blocks of `BLOCK_S` seconds
(decode, resample, clipping count, trim, high-pass with its state carried across blocks) through two
raw float32 temporary files (`SampleFile`), and each segment is read back alone. The numbers are those
of a single pass over the whole file (tested). Threads, not processes: the heavy parts (libsndfile,
soxr, scipy's `lfilter`, numpy) release the GIL, and a process pool's start-up (new interpreters
importing scipy) costs more than the whole stage on a minute of audio. Speeds: bench/README.md.

`collect_inputs(urls, zip_path, work_dir)` turns the user's URLs and/or dataset zip into the file list.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from infer.lib.audio import SEGMENT_RATE, AudioDecodeError, SampleFile, decode_blocks, load_audio, probe_all, resample
from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger, progress
from infer.lib.slicer import Slicer, SlicerParams
from infer.lib.vad import overlap_seconds

if TYPE_CHECKING:
    from infer.lib.dataset_zip import ZipLimits
    from infer.lib.enhance import AudioEnhancer
    from infer.lib.wav_downloader import DownloadSettings

_log = get_logger("preprocess")

SEGMENT_S = 3.7  # the reference's; 3.0 s (SEGMENT_S_SHORT) on fp32-only GPUs and cards of <= 4 GB
SEGMENT_S_SHORT = 3.0
OVERLAP_S = 0.3
MAX_PEAK = 2.5  # segments louder than this are dropped (reference)
NORM_MAX = 0.9
NORM_ALPHA = 0.75
HIGHPASS_HZ = 48.0
HIGHPASS_ORDER = 5
CLIP_LEVEL = 0.999  # |sample| at or above counts as clipped
SILENT_DBFS = -50.0  # a file whose RMS is below this is reported as silent
WARN_SPEECH_S = 600.0
MIN_SEGMENT_SPEECH = 0.25  # a segment with less speech than this fraction of its length is dropped
MIN_SPEECH_S = 10.0
BLOCK_S = 30.0  # seconds of audio per block when streaming a file through decoding and filtering


@dataclass(frozen=True)
class FileReport:
    """What preprocessing found in one input file."""

    index: int
    name: str
    duration_s: float  # decoded length (after enhancement, before trimming)
    source_sample_rate: int
    channels: int
    codec: str
    peak: float
    rms_dbfs: float
    clipped_fraction: float  # of samples on flat tops at full scale (|x| >= 0.999, equal to a neighbour)
    silent: bool
    trimmed_s: float  # leading + trailing silence removed
    slices: int
    segments_kept: int
    segments_dropped: int  # peak > 2.5
    kept_s: float  # seconds of the input covered by kept segments (overlaps counted once)
    error: str | None = None
    speech_kept_s: float | None = None  # speech (VAD) inside the kept segments; None without regions
    segments_no_speech: int = 0  # dropped: under MIN_SEGMENT_SPEECH of speech

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class PreprocessReport:
    """The dataset report: totals, per-file details, warnings."""

    sample_rate: int
    segment_s: float
    n_files: int
    total_duration_s: float
    kept_s: float
    segments_kept: int
    segments_dropped: int
    speech_s: float | None  # speech in the kept segments (None: no speech regions were given)
    segments_no_speech: int
    sample_rates: dict[str, int]  # source rate (Hz, as text) -> number of files
    clipped_files: list[str]
    silent_files: list[str]
    enhanced: bool
    trimmed: bool
    files: list[FileReport]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["files"] = [f.to_dict() for f in self.files]
        return d


@dataclass(frozen=True)
class _Task:
    index: int
    name: str
    path: str
    sr: int
    per: float
    trim: bool
    trim_top_db: float
    gt_dir: str
    wav16_dir: str
    info: dict
    slicer: SlicerParams
    work_dir: str  # temporary files of this stage
    source_clipped: float | None = None  # measured before enhancement (the worker sees enhanced audio)
    speech: tuple[tuple[float, float], ...] | None = None  # speech regions, seconds from the file's start


def segment_starts(n: int, sr: int, per: float, overlap: float = OVERLAP_S) -> list[tuple[int, int]]:
    """The reference segmentation of one slice of `n` samples: [(start, end)] sample ranges.

    Full segments of `per` seconds start every `per - overlap` seconds while more than `per + overlap`
    seconds remain after the start; the remainder from the last start is the final segment.
    """
    out = []
    seg = int(per * sr)
    tail = (per + overlap) * sr
    i = 0
    while True:
        start = int(sr * (per - overlap) * i)
        i += 1
        if n - start > tail:
            out.append((start, start + seg))
        else:
            out.append((start, n))
            return out


def normalize_segment(x: np.ndarray) -> np.ndarray | None:
    """The reference loudness normalisation; None when the peak exceeds 2.5 (or is 0: nothing to keep)."""
    peak = float(np.abs(x).max()) if x.size else 0.0
    if peak > MAX_PEAK or peak == 0.0:
        return None
    return (x / peak * (NORM_MAX * NORM_ALPHA) + (1 - NORM_ALPHA) * x).astype(np.float32)


def _write_pcm16(path: Path, audio: np.ndarray, sr: int) -> None:
    """Write a segment under a hidden temporary name, then rename it (atomic). No fsync: segments are
    regenerated by a re-run, and one fsync per segment was about a fifth of the stage's time."""
    import soundfile as sf

    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        sf.write(str(tmp), np.clip(audio, -1.0, 1.0), sr, subtype="PCM_16", format="WAV")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@dataclass
class _Stats:
    """What one streaming pass measures: source samples, clipped ones, and the peak and power at `sr`."""

    n_source: int = 0
    n_clipped: int = 0
    peak: float = 0.0
    sum_squares: float = 0.0
    _last: float | None = None  # the previous block's last source sample and whether it equals its left
    _last_same_left: bool = False

    def clipping(self, x: np.ndarray) -> None:
        """Count flat tops (`clipped_fraction`) exactly across block edges: a block's last sample is
        decided once the next block's first is known."""
        if self._last is not None:
            x = np.concatenate([np.array([self._last], dtype=np.float32), x])
        if x.size == 0:
            return
        hot = np.abs(x) >= CLIP_LEVEL
        same = np.abs(np.diff(x)) < 1e-4
        flat = np.zeros(x.shape[0], dtype=bool)
        flat[1:] |= same
        flat[:-1] |= same
        flat[0] |= self._last_same_left
        self.n_clipped += int((hot & flat)[:-1].sum())
        self._last, self._last_same_left = float(x[-1]), bool(same[-1]) if same.size else self._last_same_left

    def finish_clipping(self) -> float:
        if self._last is not None and abs(self._last) >= CLIP_LEVEL and self._last_same_left:
            self.n_clipped += 1
        return self.n_clipped / self.n_source if self.n_source >= 2 else 0.0

    def level(self, x: np.ndarray) -> None:
        if x.size:
            self.peak = max(self.peak, float(np.abs(x).max()))
            self.sum_squares += float(np.sum(np.square(x, dtype=np.float64)))


def clipped_fraction(x: np.ndarray) -> float:
    """Fraction of samples on a flat top at full scale (|x| >= 0.999 and equal to a neighbour): clipping."""
    st = _Stats(n_source=x.size)
    st.clipping(x)
    return st.finish_clipping()


def _decode(path: Path, sr: int, out: SampleFile, work: Path, measure_clipping: bool) -> _Stats:
    """`path` through `decode_blocks` at `sr` into `out`: clipping counted on the source samples
    (resampling rounds off the flat tops it looks for), peak and power measured at `sr`."""
    st = _Stats()
    for x, y in decode_blocks(path, sr, BLOCK_S, work):
        st.n_source += x.shape[0]
        if measure_clipping:
            st.clipping(x)
        st.level(y)
        out.append(y)
    return st


def _highpass(audio: SampleFile, lo: int, hi: int, sr: int, out: SampleFile) -> None:
    """The 48 Hz 5th-order Butterworth high-pass (`scipy.signal.lfilter`) over `audio[lo:hi]` into `out`, in
    blocks, the filter state carried across them: the same numbers as one call over the whole range."""
    from scipy import signal

    b, a = signal.butter(N=HIGHPASS_ORDER, Wn=HIGHPASS_HZ, btype="high", fs=sr)
    zi = np.zeros(max(len(a), len(b)) - 1)
    step = max(1, int(BLOCK_S * sr))
    for s in range(lo, hi, step):
        y, zi = signal.lfilter(b, a, audio[s : min(hi, s + step)], zi=zi)
        out.append(y.astype(np.float32))


def _failed(task: _Task, error: str) -> FileReport:
    info = task.info
    return FileReport(task.index, task.name, 0.0, info.get("sample_rate", 0), info.get("channels", 0),
                      info.get("codec", "?"), 0.0, -200.0, 0.0, True, 0.0, 0, 0, 0, 0.0, error)  # fmt: skip


@dataclass
class _Kept:
    """What `_write_segments` kept and dropped of one file."""

    kept: int = 0
    dropped: int = 0  # too loud
    no_speech: int = 0
    samples: int = 0  # of the filtered audio covered by kept segments, overlaps counted once
    spans: list[tuple[float, float]] = field(default_factory=list)  # kept, seconds from the file's start

    def add(self, t0: float, t1: float) -> None:
        self.kept += 1
        if self.spans and t0 <= self.spans[-1][1]:
            self.spans[-1] = (self.spans[-1][0], max(self.spans[-1][1], t1))
        else:
            self.spans.append((t0, t1))


def _write_segments(task: _Task, filtered: SampleFile, ranges: list[tuple[int, int]], lo: int) -> _Kept:
    """The slices `ranges` of `filtered` (which starts at source sample `lo`) cut into segments, checked
    for speech and loudness, normalised and written at `task.sr` and 16 kHz."""
    k = _Kept()
    seg_idx = 0
    gt_dir, w16_dir = Path(task.gt_dir), Path(task.wav16_dir)
    for s0, s1 in ranges:
        covered_to = 0  # kept seconds count each sample once, overlaps included once
        for start, end in segment_starts(s1 - s0, task.sr, task.per):
            name = f"{task.index}_{seg_idx}.wav"
            seg_idx += 1
            t0, t1 = (lo + s0 + start) / task.sr, (lo + s0 + end) / task.sr
            if task.speech is not None and overlap_seconds(task.speech, t0, t1) < MIN_SEGMENT_SPEECH * (t1 - t0):
                k.no_speech += 1
                continue
            seg = normalize_segment(filtered[s0 + start : s0 + end])
            if seg is None:
                k.dropped += 1
                continue
            _write_pcm16(gt_dir / name, seg, task.sr)
            _write_pcm16(w16_dir / name, resample(seg, task.sr, SEGMENT_RATE), SEGMENT_RATE)
            k.samples += max(0, end - max(start, covered_to))
            covered_to = end
            k.add(t0, t1)
    return k


def _process_file(task: _Task) -> FileReport:
    """One input file through decoding, trim, filter, slicer, segmentation, normalisation and writing.

    Streamed: the file is decoded and resampled in blocks into a raw temporary file, trimmed and
    filtered into a second one, and each segment read back alone, so memory does not grow with the
    recording's length.
    """
    enhanced = task.source_clipped is not None  # then `path` is the enhancer's output, already at `sr`
    work = Path(tempfile.mkdtemp(prefix=f".file{task.index}-", dir=task.work_dir))
    decoded, filtered = SampleFile(work / "decoded.f32"), SampleFile(work / "filtered.f32")
    try:
        try:
            st = _decode(Path(task.path), task.sr, decoded, work, measure_clipping=not enhanced)
        except AudioDecodeError as e:
            return _failed(task, str(e))
        n = len(decoded)
        clipped = task.source_clipped if task.source_clipped is not None else st.finish_clipping()
        level = 20 * np.log10(np.sqrt(st.sum_squares / n)) if n and st.sum_squares > 0 else -200.0
        silent = bool(level < SILENT_DBFS)
        lo, hi = 0, n
        if task.trim and not silent:
            from infer.lib.enhance import trim_range

            lo, hi = trim_range(decoded, task.sr, task.trim_top_db, peak=st.peak)
        _highpass(decoded, lo, hi, task.sr, filtered)
        decoded.close()
        ranges = Slicer(task.sr, task.slicer).ranges(filtered) if len(filtered) else []
        k = _write_segments(task, filtered, ranges, lo)
    finally:
        decoded.close()
        filtered.close()
        shutil.rmtree(work, ignore_errors=True)
    info = task.info
    speech_s = None if task.speech is None else sum(overlap_seconds(task.speech, a, b) for a, b in k.spans)
    return FileReport(
        index=task.index, name=task.name, duration_s=round(n / task.sr, 3),
        source_sample_rate=int(info.get("sample_rate", 0)), channels=int(info.get("channels", 0)),
        codec=str(info.get("codec", "?")), peak=round(st.peak, 4), rms_dbfs=round(float(level), 2),
        clipped_fraction=round(clipped, 6), silent=silent, trimmed_s=round((n - (hi - lo)) / task.sr, 3),
        slices=len(ranges), segments_kept=k.kept, segments_dropped=k.dropped, kept_s=round(k.samples / task.sr, 3),
        speech_kept_s=None if speech_s is None else round(speech_s, 3), segments_no_speech=k.no_speech,
    )  # fmt: skip


def preprocess(
    files: list[Path],
    exp: ExperimentLayout,
    sr: int,
    segment_s: float = SEGMENT_S,
    n_workers: int | None = None,
    enhancer: AudioEnhancer | None = None,
    trim_silence: bool = True,
    trim_top_db: float = 40.0,
    slicer: SlicerParams | None = None,
    min_speech_s: float = MIN_SPEECH_S,
    warn_speech_s: float = WARN_SPEECH_S,
    speech: Sequence[Sequence[tuple[float, float]]] | None = None,
    infos: list[dict] | None = None,
) -> PreprocessReport:
    """Turn `files` into training segments in `exp`; see the module docstring. Returns the report.

    `speech`: per file, its speech regions [(start, end)] in seconds (the data check's); segments with
    little speech are then dropped and the report counts speech seconds. `infos`: `probe_all(files)`
    when the caller has it already (the check audio stage)."""
    files = [Path(f) for f in files]
    _check_arguments(files, sr, segment_s, speech)
    infos = infos if infos is not None else probe_all(files)
    _prepare_dirs(exp)
    n_workers = max(1, min(n_workers or os.cpu_count() or 1, len(files)))
    _log.info(
        "preprocessing %d file(s), %.1f s of audio, at %d Hz, %.1f s segments, %d worker(s)%s%s",
        len(files), sum(i["duration_s"] for i in infos), sr, segment_s, n_workers,
        ", enhancement on" if enhancer else "", ", trimming silence" if trim_silence else "",
    )  # fmt: skip
    work_dir = tempfile.mkdtemp(prefix=".preprocess-", dir=exp.root)
    try:
        paths: list[str] = [str(f) for f in files]
        source_clipped: list[float | None] = [None] * len(files)
        if enhancer is not None:
            paths, source_clipped = _enhance_all(files, infos, sr, enhancer, Path(work_dir))
        tasks = [
            _Task(i, f.name, paths[i], sr, segment_s, trim_silence, trim_top_db, str(exp.gt_wavs_dir), str(exp.wavs16k_dir), infos[i], slicer or SlicerParams(), work_dir, source_clipped[i], None if speech is None else tuple((a, b) for a, b in speech[i]))
            for i, f in enumerate(files)
        ]  # fmt: skip
        import scipy.signal  # noqa: F401 - imported once here, not raced for by the threads

        with ThreadPoolExecutor(max_workers=n_workers) as pool:
            reports = list(
                progress(pool.map(_process_file, tasks), "preprocessing", total=len(tasks), unit="file", logger=_log)
            )
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    report = _summarise(reports, sr, segment_s, enhancer is not None, trim_silence, warn_speech_s)
    from infer.lib.fileio import atomic_write_text

    atomic_write_text(exp.reports_dir / "preprocess.json", json.dumps(report.to_dict(), indent=2))
    _log_report(report)
    _check_result(report, min_speech_s)
    return report


def _check_arguments(
    files: list[Path], sr: int, segment_s: float, speech: Sequence[Sequence[tuple[float, float]]] | None
) -> None:
    if not files:
        raise UserInputError("no audio files to train on: give audio URLs or a dataset zip")
    if speech is not None and len(speech) != len(files):
        raise ValueError(f"speech regions for {len(speech)} file(s), {len(files)} files given")
    if sr <= SEGMENT_RATE // 2:
        raise ValueError(f"sample rate {sr} is too low")
    if not 1.0 <= segment_s <= 10.0:
        raise ValueError(f"segment_s must be 1..10 seconds, got {segment_s}")


def _prepare_dirs(exp: ExperimentLayout) -> None:
    """The segment and report folders, without the segments of an earlier run (a re-run must not mix
    old segments in)."""
    exp.gt_wavs_dir.mkdir(parents=True, exist_ok=True)
    exp.wavs16k_dir.mkdir(parents=True, exist_ok=True)
    exp.reports_dir.mkdir(parents=True, exist_ok=True)
    for d in (exp.gt_wavs_dir, exp.wavs16k_dir):
        for old in d.glob("*.wav"):
            old.unlink()


def _enhance_all(
    files: list[Path], infos: list[dict], sr: int, enhancer: AudioEnhancer, work_dir: Path
) -> tuple[list[str], list[float | None]]:
    """Every file decoded at its own rate, its clipping measured, resampled to `sr` and enhanced into a
    float WAV in `work_dir`: (the enhanced files' paths, the source clipping per file)."""
    import soundfile as sf

    paths: list[str] = []
    clipped: list[float | None] = []
    for i, f in enumerate(progress(files, "enhancing audio", unit="file", logger=_log)):
        rate = int(infos[i]["sample_rate"])
        audio = load_audio(f, rate)
        clipped.append(clipped_fraction(audio))  # on the source samples, as without enhancement
        audio = enhancer.enhance(resample(audio, rate, sr), sr)
        out = work_dir / f"{i}.wav"
        sf.write(str(out), audio, sr, subtype="FLOAT")
        paths.append(str(out))
    return paths, clipped


def _check_result(report: PreprocessReport, min_speech_s: float) -> None:
    """`UserInputError` when a file could not be decoded or too little audio is left to train on."""
    failed = [r for r in report.files if r.error]
    if failed:
        raise UserInputError("some files could not be decoded:\n" + "\n".join(f"  {r.error}" for r in failed))
    if report.kept_s < min_speech_s:
        raise UserInputError(
            f"only {report.kept_s:.1f} s of usable audio remain after preprocessing ({report.total_duration_s:.1f} s "
            f"given, {report.segments_dropped} segment(s) dropped as too loud, {len(report.silent_files)} silent "
            f"file(s)); at least {min_speech_s:.0f} s are needed to train, 10 minutes or more for a good voice. "
            "Give more (or louder, unclipped) recordings."
        )


def _summarise(
    reports: list[FileReport], sr: int, per: float, enhanced: bool, trimmed: bool, warn_speech_s: float
) -> PreprocessReport:
    with_speech = [r.speech_kept_s for r in reports if r.speech_kept_s is not None]
    report = PreprocessReport(
        sample_rate=sr,
        segment_s=per,
        n_files=len(reports),
        total_duration_s=round(sum(r.duration_s for r in reports), 3),
        kept_s=round(sum(r.kept_s for r in reports), 3),
        segments_kept=sum(r.segments_kept for r in reports),
        segments_dropped=sum(r.segments_dropped for r in reports),
        speech_s=round(sum(with_speech), 3) if with_speech else None,
        segments_no_speech=sum(r.segments_no_speech for r in reports),
        sample_rates=dict(Counter(str(r.source_sample_rate) for r in reports)),
        clipped_files=[r.name for r in reports if r.clipped_fraction > 0.001],
        silent_files=[r.name for r in reports if r.silent],
        enhanced=enhanced,
        trimmed=trimmed,
        files=reports,
    )
    return dataclasses.replace(report, warnings=_warnings(report, warn_speech_s))


def _warnings(r: PreprocessReport, warn_speech_s: float) -> list[str]:
    """What the user should know about the dataset `r` (too little speech, clipping, silence, ...)."""
    warnings = []
    usable = r.kept_s if r.speech_s is None else r.speech_s
    if usable < warn_speech_s:
        warnings.append(
            f"only {usable / 60:.1f} minutes of {'usable audio' if r.speech_s is None else 'speech'}: expect a weaker "
            f"voice (about {warn_speech_s / 60:.0f} minutes or more of clean speech is recommended)"
        )
    if r.clipped_files:
        warnings.append(
            f"{len(r.clipped_files)} file(s) are clipped (distorted peaks): {', '.join(r.clipped_files[:5])}"
        )
    if r.silent_files:
        warnings.append(f"{len(r.silent_files)} file(s) are silent or nearly so: {', '.join(r.silent_files[:5])}")
    low = [f.name for f in r.files if 0 < f.source_sample_rate < min(r.sample_rate, 32000)]
    if low:
        warnings.append(
            f"{len(low)} file(s) have a low sample rate (below {min(r.sample_rate, 32000)} Hz), so the voice will "
            "sound dull: " + ", ".join(low[:5])
        )
    if r.segments_dropped:
        warnings.append(f"{r.segments_dropped} segment(s) were dropped because their peak exceeds {MAX_PEAK}")
    if r.segments_no_speech:
        warnings.append(
            f"{r.segments_no_speech} segment(s) were dropped because under {MIN_SEGMENT_SPEECH:.0%} of them is "
            "speech: " + ", ".join(f"{f.name} ({f.segments_no_speech})" for f in r.files if f.segments_no_speech)
        )
    return warnings


def _log_report(r: PreprocessReport) -> None:
    speech = f", {r.speech_s / 60:.1f} min of speech in them" if r.speech_s is not None else ""
    _log.info(
        "dataset: %d file(s), %.1f s in, %.1f s kept in %d segment(s)%s (%d dropped as too loud, %d as not "
        "speech); source rates %s",
        r.n_files, r.total_duration_s, r.kept_s, r.segments_kept, speech, r.segments_dropped,
        r.segments_no_speech, r.sample_rates,
    )  # fmt: skip
    for f in r.files:
        _log.info(
            "  %s: %.1f s, %d Hz, %s, peak %.2f, %.1f dBFS, clipped %.3f%%, %d segment(s) kept%s, %d dropped%s%s",
            f.name, f.duration_s, f.source_sample_rate, f.codec, f.peak, f.rms_dbfs, 100 * f.clipped_fraction,
            f.segments_kept, f" ({f.speech_kept_s:.1f} s speech)" if f.speech_kept_s is not None else "",
            f.segments_dropped, f", {f.segments_no_speech} not speech" if f.segments_no_speech else "",
            " SILENT" if f.silent else "",
        )  # fmt: skip
    for w in r.warnings:
        _log.warning("dataset: %s", w)


def collect_inputs(
    urls: list[str] | None,
    zip_path: str | os.PathLike[str] | None,
    work_dir: str | os.PathLike[str],
    download: DownloadSettings | None = None,
    zip_limits: ZipLimits | None = None,
    cancel: threading.Event | None = None,
) -> list[Path]:
    """The user's audio as a file list: URLs downloaded into `work_dir/urls`, the zip into `work_dir/zip`.

    Either or both may be given; raises `UserInputError` when neither is, or when any fails.
    """
    from infer.lib.dataset_zip import extract_dataset_zip
    from infer.lib.wav_downloader import WavDownloader

    urls = [u for u in (urls or []) if u and u.strip()]
    if not urls and not zip_path:
        raise UserInputError("no training audio: give audio URLs and/or a dataset zip")
    downloader = WavDownloader(download)
    if urls:
        urls = downloader.validate(urls)  # refuse bad schemes before unpacking anything
    work_dir = Path(work_dir)
    files: list[Path] = []
    if zip_path:
        files += extract_dataset_zip(zip_path, work_dir / "zip", zip_limits).files
    if urls:
        files += [d.path for d in downloader.download(urls, work_dir / "urls", cancel=cancel)]
    return files
