"""The HuBERT feature stage on real 16 kHz segments of joe_1min, with the reference tiny fairseq checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from infer.lib.audio import read_wav16k
from infer.lib.cache import ArrayCache
from infer.lib.errors import UserInputError
from infer.lib.hubert import HubertModel, load_hubert
from infer.lib.layout import ExperimentLayout
from infer.modules.train.extract_features import FeatureReport, extract_features
from tools.standin_writers import write_standin_hubert

SEG = 59200  # 3.7 s at 16 kHz: the length preprocess gives most segments


@pytest.fixture(scope="module")
def speech16k(joe_1min: Path) -> np.ndarray:
    from scipy.signal import resample_poly

    audio, sr = sf.read(str(joe_1min / "joe_000.wav"), dtype="float32")
    assert sr == 22050
    return resample_poly(audio, 320, 441).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_hubert(reference_dir: Path) -> HubertModel:
    return load_hubert(reference_dir / "hubert" / "tiny_hubert_fairseq.pt", "cpu")


def _make_segments(exp: ExperimentLayout, speech: np.ndarray, lengths: list[int]) -> list[str]:
    """Write 16 kHz segments `0_<i>.wav` of the given lengths cut from `speech` (as preprocess lays them out)."""
    exp.wavs16k_dir.mkdir(parents=True, exist_ok=True)
    names, pos = [], 0
    for i, n in enumerate(lengths):
        names.append(f"0_{i}.wav")
        sf.write(exp.wavs16k_dir / names[-1], speech[pos : pos + n], 16000, subtype="FLOAT")
        pos += n // 2
    return names


@pytest.mark.parametrize(("version", "cpu_fill"), [("v1", 0.75), ("v2", 0.75), ("v2", None)])
def test_features_match_one_by_one(
    tmp_path: Path,
    speech16k: np.ndarray,
    tiny_hubert: HubertModel,
    version: str,
    cpu_fill: float | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Batched passes give each segment's numbers alone: with padded batches (the GPU's rule, here on
    the CPU) and with the CPU's default (equal lengths only)."""
    import infer.modules.train.extract_features as E

    if cpu_fill is not None:
        monkeypatch.setitem(E.MIN_FILL, "cpu", cpu_fill)
    exp = ExperimentLayout(tmp_path / "exp", version)
    names = _make_segments(exp, speech16k, [SEG, SEG, SEG, 41000, SEG, 16000, 50000, 46000])
    report = extract_features(exp, tiny_hubert, None, ArrayCache(None))
    assert isinstance(report, FeatureReport)
    assert (report.n_files, report.n_extracted, report.n_cached) == (8, 8, 0)
    assert report.nan_files == () and report.failed == ()
    if cpu_fill == 0.75:
        # one padded pass for the four 3.7 s segments with 50000 and 46000 (>= 0.75 of the longest);
        # 41000 (< 0.75 * 59200) starts a pass, 16000 (< 0.75 * 41000) another
        assert report.n_forward_passes == 3
    else:  # CPU default: the four 3.7 s segments in one pass, every other length alone
        assert report.n_forward_passes == 5
    assert report.dim == (16 if version == "v1" else 32) and report.dtype == "float32"
    for name in names:
        feats = np.load(exp.feature_file(name))
        wav = read_wav16k(exp.wavs16k_dir / name)
        assert feats.dtype == np.float32
        assert feats.shape == ((len(wav) - 400) // 320 + 1, report.dim)  # 50 frames/s, as the reference
        with torch.inference_mode():
            alone = tiny_hubert.extract(torch.from_numpy(wav)[None], None, version)[0].numpy()
        np.testing.assert_allclose(feats, alone, atol=1e-5, rtol=1e-5)
    assert sorted(p.name for p in exp.feature_dir.iterdir()) == sorted(n.replace(".wav", ".npy") for n in names)
    assert report.to_dict()["rtf"] > 0


def test_cache_makes_rerun_free(tmp_path: Path, speech16k: np.ndarray, reference_dir: Path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    names = _make_segments(exp, speech16k, [SEG, SEG, 20000])
    cache = ArrayCache(tmp_path / "cache")
    weights = reference_dir / "hubert" / "tiny_hubert_fairseq.pt"
    first = extract_features(exp, weights, "cpu", cache)
    assert (first.n_extracted, first.n_cached) == (3, 0) and not first.standin_weights
    before = {n: np.load(exp.feature_file(n)) for n in names}
    for n in names:
        exp.feature_file(n).unlink()
    second = extract_features(exp, weights, "cpu", cache)
    assert (second.n_extracted, second.n_cached, second.n_forward_passes) == (0, 3, 0)
    for n in names:
        np.testing.assert_array_equal(np.load(exp.feature_file(n)), before[n])
    # another version is another key: v1 extracts again
    v1 = extract_features(ExperimentLayout(exp.root, "v1"), weights, "cpu", cache)
    assert (v1.n_extracted, v1.n_cached) == (3, 0)
    # changed audio misses the cache
    sf.write(exp.wavs16k_dir / names[2], speech16k[5000:25000], 16000, subtype="FLOAT")
    third = extract_features(exp, weights, "cpu", cache)
    assert (third.n_extracted, third.n_cached) == (1, 2)


def test_nan_segment_is_reported_not_dropped_silently(
    tmp_path: Path, speech16k: np.ndarray, tiny_hubert: HubertModel
) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    names = _make_segments(exp, speech16k, [SEG, SEG, SEG])
    bad = speech16k[:SEG].copy()
    bad[1234] = np.nan  # a float wav can carry NaN; HuBERT then gives NaN for the whole segment
    sf.write(exp.wavs16k_dir / names[1], bad, 16000, subtype="FLOAT")
    exp.feature_dir.mkdir(parents=True)
    np.save(exp.feature_file(names[1]), np.zeros((3, 32), np.float32))  # stale file from an earlier run
    report = extract_features(exp, tiny_hubert, None, ArrayCache(tmp_path / "cache"))
    assert report.nan_files == (names[1],)
    assert report.n_extracted == 2 and report.n_written == 2
    assert not exp.feature_file(names[1]).exists()
    assert exp.feature_file(names[0]).exists() and exp.feature_file(names[2]).exists()
    assert report.to_dict()["nan_files"] == [names[1]]


def test_bad_input_is_refused_before_work(tmp_path: Path, speech16k: np.ndarray, tiny_hubert: HubertModel) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    with pytest.raises(UserInputError, match="preprocess"):
        extract_features(exp, tiny_hubert, None, ArrayCache(None))
    exp.wavs16k_dir.mkdir(parents=True)
    sf.write(exp.wavs16k_dir / "0_0.wav", speech16k[:22050], 22050)
    with pytest.raises(UserInputError, match="22050 Hz"):
        extract_features(exp, tiny_hubert, None, ArrayCache(None))
    assert not exp.feature_dir.exists()


def test_standin_weights_are_flagged_in_the_report(tmp_path: Path, speech16k: np.ndarray) -> None:
    weights = write_standin_hubert(tmp_path / "hubert_base.pt", size="tiny")
    exp = ExperimentLayout(tmp_path / "exp", "v1")
    _make_segments(exp, speech16k, [16000])
    report = extract_features(exp, weights, "cpu", ArrayCache(None))
    assert report.standin_weights and report.n_extracted == 1 and report.dim == 16
