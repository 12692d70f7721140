"""The filelist stage: reference line format, complete segments only, run-time mute entries."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.lib.errors import UserInputError
from infer.lib.layout import ExperimentLayout
from infer.modules.train.filelist import (
    FilelistEntry,
    mute_files_present,
    mute_layout,
    read_filelist,
    write_filelist,
    write_mute_audio,
)


def _segment(exp: ExperimentLayout, name: str, f0: bool = True, feature: bool = True) -> None:
    sf.write(exp.gt_wavs_dir / f"{name}.wav", np.zeros(4000, np.int16), 40000, subtype="PCM_16")
    if feature:
        np.save(exp.feature_file(f"{name}.wav"), np.zeros((10, 768), np.float32))
    if f0:
        np.save(exp.f0_file(f"{name}.wav"), np.ones(20, np.int64))
        np.save(exp.f0nsf_file(f"{name}.wav"), np.zeros(20, np.float32))


def _fake_mute(exp: ExperimentLayout, f0: bool) -> None:
    mute = write_mute_audio(exp, 40000)
    np.save(mute.feature_file("mute.wav"), np.zeros((149, 768), np.float32))
    if f0:
        np.save(mute.f0_file("mute.wav"), np.ones(301, np.int64))
        np.save(mute.f0nsf_file("mute.wav"), np.zeros(301, np.float32))


def test_filelist_reference_format_with_pitch(tmp_path: Path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    for n in ("0_0", "0_1", "1_0", "1.5_0"):  # a dot in the name is kept whole (the reference cuts it)
        _segment(exp, n)
    _segment(exp, "2_0", f0=False)  # no pitch: left out
    _segment(exp, "3_0", feature=False)  # no features: left out
    _fake_mute(exp, True)
    rep = write_filelist(exp, use_f0=True, speaker=0, seed=1)
    assert (rep.n_segments, rep.n_mute) == (4, 2)
    assert rep.incomplete == ["2_0", "3_0"]
    lines = exp.filelist_path.read_text().splitlines()
    assert len(lines) == 6
    gt = str(exp.gt_wavs_dir.resolve() / "1.5_0.wav")
    want = "|".join(
        [
            gt,
            str(exp.feature_dir.resolve() / "1.5_0.npy"),
            str(exp.f0_dir.resolve() / "1.5_0.wav.npy"),
            str(exp.f0nsf_dir.resolve() / "1.5_0.wav.npy"),
            "0",
        ]
    )
    assert want in lines
    mute = mute_layout(exp)
    assert sum(line.startswith(str(mute.gt_wavs_dir.resolve())) for line in lines) == 2
    entries = read_filelist(exp.filelist_path)
    assert sum(e.is_mute for e in entries) == 2 and all(e.use_f0 for e in entries)
    assert all(e.gt_wav.is_file() and e.feature.is_file() and e.f0 is not None and e.f0.is_file() for e in entries)
    # shuffled with the seed: the same seed gives the same order
    write_filelist(exp, use_f0=True, speaker=0, seed=1)
    assert exp.filelist_path.read_text().splitlines() == lines


def test_filelist_without_pitch(tmp_path: Path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    _segment(exp, "0_0", f0=False)
    _fake_mute(exp, False)
    rep = write_filelist(exp, use_f0=False, speaker=3)
    lines = exp.filelist_path.read_text().splitlines()
    assert rep.n_segments == 1 and len(lines) == 3
    assert all(len(line.split("|")) == 3 and line.endswith("|3") for line in lines)
    assert not any(e.use_f0 for e in read_filelist(exp.filelist_path))


def test_mute_audio_is_three_seconds_of_silence(tmp_path: Path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v1")
    mute = write_mute_audio(exp, 48000)
    a, sr = sf.read(mute.gt_wavs_dir / "mute.wav", dtype="int16")
    b, sr16 = sf.read(mute.wavs16k_dir / "mute.wav", dtype="int16")
    assert (sr, len(a), sr16, len(b)) == (48000, 144000, 16000, 48000)
    assert not a.any() and not b.any()
    assert sf.info(mute.gt_wavs_dir / "mute.wav").subtype == "PCM_16"
    assert not mute_files_present(exp, use_f0=False)  # features still to compute


def test_mute_pitch_from_the_real_extractor(tmp_path: Path) -> None:
    # The mute pitch is computed by the run's own f0 stage on the silent clip: unvoiced everywhere.
    from infer.lib.cache import ArrayCache
    from infer.modules.train.extract_f0 import extract_f0

    exp = ExperimentLayout(tmp_path / "exp", "v2")
    mute = write_mute_audio(exp, 40000)
    extract_f0(mute, "pm", ArrayCache(None), n_workers=1)
    coarse = np.load(mute.f0_file("mute.wav"))
    hz = np.load(mute.f0nsf_file("mute.wav"))
    assert len(coarse) == len(hz) == 48000 // 160  # pm: T // 160 frames, as the reference
    assert (coarse == 1).all() and (hz == 0).all()


def test_no_segments_is_a_user_error(tmp_path: Path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    with pytest.raises(UserInputError, match="no complete training segments"):
        write_filelist(exp, use_f0=True)


def test_bad_lines_refused(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="bad line"):
        FilelistEntry.from_line("a.wav|b.npy")
    p = tmp_path / "filelist.txt"
    p.write_text("a.wav|b.npy|c.npy|d.npy|0\na.wav|b.npy|0\n")
    with pytest.raises(UserInputError, match="mixes"):
        read_filelist(p)
