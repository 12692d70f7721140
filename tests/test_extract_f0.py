"""The extract_f0 stage on real 16 kHz speech segments: outputs, frame counts, process pool, cache, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from infer.lib.cache import ArrayCache
from infer.lib.errors import UserInputError
from infer.lib.f0 import F0Extractor, coarse_f0, default_n_frames
from infer.lib.layout import ExperimentLayout
from infer.modules.train.extract_f0 import F0Report, extract_f0
from tests.support.reference_weights import save_deterministic_weights

SEG_SECONDS = (1.3, 1.0, 0.8, 1.17)


def make_exp(root: Path, joe_1min: Path) -> ExperimentLayout:
    """An experiment folder with four 16 kHz segments of real speech (different lengths)."""
    exp = ExperimentLayout(root, "v2")
    exp.make_dirs()
    audio, sr = sf.read(str(joe_1min / "joe_001.wav"), dtype="float32", frames=22050 * 6)
    audio = resample_poly(audio, 320, 441).astype(np.float32)
    start = 8000
    for i, sec in enumerate(SEG_SECONDS):
        n = int(sec * 16000)
        sf.write(str(exp.wavs16k_dir / f"0_{i}.wav"), audio[start : start + n], 16000, subtype="PCM_16")
        start += n
    return exp


def check_outputs(exp: ExperimentLayout, method: str = "rmvpe") -> dict[str, np.ndarray]:
    out = {}
    for wav in sorted(exp.wavs16k_dir.glob("*.wav")):
        n_samples = sf.info(str(wav)).frames
        hz = np.load(exp.f0nsf_file(wav.name))
        coarse = np.load(exp.f0_file(wav.name))
        assert exp.f0nsf_file(wav.name).name == f"{wav.name}.npy"  # reference naming: 0_1.wav.npy
        assert hz.dtype == np.float32 and hz.shape == (default_n_frames(n_samples, method),)  # pm: T // 160
        assert coarse.shape == hz.shape and coarse.min() >= 1 and coarse.max() <= 255
        assert np.array_equal(coarse, coarse_f0(hz))
        # pitch covers the HuBERT frames repeated twice (the loader trims to the shorter)
        assert len(hz) >= 2 * ((n_samples - 400) // 320 + 1)
        out[wav.name] = hz
    return out


def test_pool_outputs_and_cache(tmp_path: Path, joe_1min: Path) -> None:
    exp = make_exp(tmp_path / "exp", joe_1min)
    cache = ArrayCache(tmp_path / "cache")
    rep = extract_f0(exp, "pm", cache, n_workers=2)
    assert isinstance(rep, F0Report)
    assert (rep.n_files, rep.n_extracted, rep.n_cached, rep.failed, rep.n_workers) == (4, 4, 0, (), 2)
    assert rep.audio_seconds == pytest.approx(sum(SEG_SECONDS), abs=0.01)
    assert 0.3 < rep.voiced_fraction < 1.0  # speech: mostly voiced, with pauses
    first = check_outputs(exp, "pm")
    # in-process computation gives the same numbers as the pool
    ex = F0Extractor("pm")
    for name, hz in first.items():
        audio, _ = sf.read(str(exp.wavs16k_dir / name), dtype="float32")
        np.testing.assert_array_equal(ex.compute(audio), hz)
    json.dumps(rep.to_dict())

    # re-run: nothing extracted, outputs rewritten identically even if deleted
    exp.f0nsf_file("0_0.wav").unlink()
    again = extract_f0(exp, "pm", cache, n_workers=2)
    assert (again.n_extracted, again.n_cached) == (0, 4)
    assert all(np.array_equal(v, check_outputs(exp, "pm")[k]) for k, v in first.items())

    # another method or changed audio misses the cache
    other = extract_f0(exp, "dio", cache, n_workers=1)
    assert (other.n_extracted, other.n_cached) == (4, 0)
    sf.write(str(exp.wavs16k_dir / "0_3.wav"), np.zeros(16000, np.float32), 16000, subtype="PCM_16")
    changed = extract_f0(exp, "dio", cache, n_workers=1)
    assert (changed.n_extracted, changed.n_cached) == (1, 3)
    assert not np.load(exp.f0nsf_file("0_3.wav")).any()  # silence is unvoiced


def test_rmvpe_stage_matches_extractor(tmp_path: Path, joe_1min: Path, reference_dir: Path) -> None:
    weights = save_deterministic_weights(reference_dir, "RMVPE", tmp_path / "rmvpe.pt")
    exp = make_exp(tmp_path / "exp", joe_1min)
    for wav in sorted(exp.wavs16k_dir.glob("*.wav"))[2:]:  # two segments are enough (CPU time)
        wav.unlink()
    rep = extract_f0(exp, "rmvpe", ArrayCache(None), rmvpe_path=weights, n_workers=1)
    assert (rep.n_extracted, rep.failed) == (2, ())
    got = check_outputs(exp)
    ex = F0Extractor("rmvpe", rmvpe_path=str(weights))
    for name, hz in got.items():
        audio, _ = sf.read(str(exp.wavs16k_dir / name), dtype="float32")
        np.testing.assert_allclose(ex.compute(audio), hz, rtol=1e-5, atol=1e-3)


def test_bad_input_fails_before_work(tmp_path: Path, joe_1min: Path) -> None:
    exp = ExperimentLayout(tmp_path / "empty")
    with pytest.raises(UserInputError, match="preprocess"):
        extract_f0(exp, "pm", ArrayCache(None))
    exp = make_exp(tmp_path / "exp", joe_1min)
    with pytest.raises(UserInputError, match="unknown f0 method"):
        extract_f0(exp, "yin", ArrayCache(None))
    with pytest.raises(UserInputError, match="RMVPE weights not found"):
        extract_f0(exp, "rmvpe", ArrayCache(None), rmvpe_path=tmp_path / "missing.pt")
    sf.write(str(exp.wavs16k_dir / "9_9.wav"), np.zeros(22050, np.float32), 22050)
    with pytest.raises(UserInputError, match="16 kHz"):
        extract_f0(exp, "pm", ArrayCache(None))
    assert not any(exp.f0nsf_dir.iterdir())  # nothing written


def test_broken_segments(tmp_path: Path, joe_1min: Path) -> None:
    exp = make_exp(tmp_path / "exp", joe_1min)
    (exp.wavs16k_dir / ".0_8.wav.tmp-x").write_bytes(b"partial")  # hidden temp files are ignored
    sf.write(str(exp.wavs16k_dir / "0_9.wav"), np.full(8000, np.nan, np.float32), 16000, subtype="FLOAT")
    rep = extract_f0(exp, "harvest", ArrayCache(None), n_workers=1)
    assert (rep.n_files, rep.n_extracted, rep.failed) == (5, 5, ())
    nan_f0 = np.load(exp.f0nsf_file("0_9.wav"))
    assert nan_f0.shape == (51,) and np.isfinite(nan_f0).all()
    (exp.wavs16k_dir / "0_7.wav").write_bytes(b"RIFF\x00\x00junk")
    with pytest.raises(UserInputError, match="0_7.wav is not a readable wav"):
        extract_f0(exp, "harvest", ArrayCache(None), n_workers=1)


@pytest.mark.parametrize("method", ["dio", "harvest"])
def test_world_threads_match_one_by_one(tmp_path: Path, joe_1min: Path, method: str) -> None:
    """pm/dio/harvest run in threads of this process (WORLD releases the GIL): the same numbers as serial."""
    exp = make_exp(tmp_path / "exp", joe_1min)
    serial = extract_f0(exp, method, ArrayCache(None), n_workers=1)
    first = check_outputs(exp, method)
    threaded = extract_f0(exp, method, ArrayCache(None), n_workers=2)
    assert (serial.n_workers, threaded.n_workers, threaded.failed) == (1, 2, ())
    second = check_outputs(exp, method)
    assert first.keys() == second.keys() and all(np.array_equal(first[k], second[k]) for k in first)
    assert sum(int((v > 0).sum()) for v in first.values()) > 100  # real voiced speech, not zeros


def test_rmvpe_groups_share_a_padded_length_and_every_worker() -> None:
    """RMVPE's CPU batches: equal padded frame counts only (so each segment's numbers are those it gets
    alone), at most RMVPE_CPU_BATCH, and spread so that two workers both get work."""
    from infer.lib.rmvpe import PAD_MULTIPLE, n_frames_for
    from infer.modules.train.extract_f0 import RMVPE_CPU_BATCH, _rmvpe_groups

    lengths = [59200] * 22 + [30000, 30100, 16000]  # 22 full 3.7 s segments, two of ~1.9 s, one of 1 s
    paths = [Path(f"0_{i}.wav") for i in range(len(lengths))]
    n = dict(zip(paths, lengths, strict=True))
    groups = _rmvpe_groups(paths, n, workers=2)
    assert sorted(p for g in groups for p in g) == sorted(paths)
    for g in groups:
        assert len({-(-n_frames_for(n[p]) // PAD_MULTIPLE) for p in g}) == 1
        assert 1 <= len(g) <= RMVPE_CPU_BATCH
    full = [len(g) for g in groups if n[g[0]] == 59200]
    assert full == [8, 8, 6]  # ceil(22 / 2 workers) = 11 is over the cap of 8
    # 30000 and 30100 samples (188 and 189 frames) share a padded length (192) but, two of them for two
    # workers, go one each; 16000 (101 frames -> 128) is alone
    assert [len(g) for g in groups if n[g[0]] < 59200] == [1, 1, 1]
    assert [len(g) for g in _rmvpe_groups(paths[:10], n, workers=2)] == [5, 5]  # 10 for 2 workers: 5 each
