"""Pitch extractors: every CPU method on signals with known pitch (real shipped crepe/fcpe weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bench.f0_accuracy import make_signal, score
from infer.lib.errors import UserInputError
from infer.lib.f0 import F0_METHODS, F0Extractor, F0Settings, coarse_f0, default_n_frames
from tests.support.reference_weights import save_deterministic_weights

SECONDS = 1.0


@pytest.fixture(scope="module")
def signals():
    return [make_signal("vibrato", SECONDS), make_signal("glide", SECONDS)]


def test_methods_list() -> None:
    assert F0_METHODS == ("pm", "dio", "harvest", "crepe", "fcpe", "rmvpe", "rmvpe_gpu")


def test_coarse_f0_reference_formula() -> None:
    f0 = np.array([0.0, 30.0, 50.0, 100.0, 440.0, 1100.0, 2000.0])
    mel = 1127 * np.log(1 + f0 / 700)
    lo, hi = 1127 * np.log(1 + 50 / 700), 1127 * np.log(1 + 1100 / 700)
    expected = np.where(mel > 0, (mel - lo) * 254 / (hi - lo) + 1, mel)
    expected = np.rint(np.clip(expected, 1, 255)).astype(int)
    got = coarse_f0(f0)
    assert got.dtype == np.int64 and got.tolist() == expected.tolist()
    assert got[0] == got[1] == got[2] == 1 and got[-2] == got[-1] == 255
    assert np.all(np.diff(coarse_f0(np.geomspace(50, 1100, 500))) >= 0)


@pytest.mark.parametrize(
    "method,settings",
    [("pm", {}), ("harvest", {}), ("dio", {}), ("crepe", {}), ("crepe", {"crepe_model": "tiny"}), ("fcpe", {})],
    ids=["pm", "harvest", "dio", "crepe-full", "crepe-tiny", "fcpe"],
)
def test_pitch_accuracy_on_clean_tones(method: str, settings: dict, signals) -> None:
    ex = F0Extractor(method, **settings)
    if method == "crepe" and not settings:
        signals = signals[:1]  # the full crepe model is slow on CPU: one clean second is enough
    for sig in signals:
        f0 = ex.compute(sig.audio)
        assert f0.dtype == np.float32 and f0.shape == (default_n_frames(len(sig.audio), method),)
        s = score(f0, sig.f0[: len(f0)])
        assert s["rpa"] >= 0.9, (method, sig.name, s)
        assert s["vr"] >= 0.9, (method, sig.name, s)


@pytest.mark.parametrize("method", ["pm", "harvest", "fcpe"])
def test_silence_gaps_are_unvoiced(method: str) -> None:
    sig = make_signal("vibrato", 2.0, gaps=True)
    f0 = F0Extractor(method).compute(sig.audio)
    s = score(f0, sig.f0[: len(f0)])
    assert s["rpa"] >= 0.9 and s["vfa"] <= 0.1, s


def test_n_frames_cuts_or_pads(signals) -> None:
    ex = F0Extractor("dio")
    x = signals[0].audio
    full = ex.compute(x)
    assert np.array_equal(ex.compute(x, n_frames=50), full[:50])
    longer = ex.compute(x, n_frames=len(full) + 7)
    assert np.array_equal(longer[: len(full)], full) and not longer[len(full) :].any()
    assert ex.compute(np.zeros(0, np.float32)).shape == (1,)


def test_bad_settings_are_user_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="unknown f0 method"):
        F0Extractor("yin")
    with pytest.raises(UserInputError, match="crepe_model"):
        F0Settings("crepe", crepe_model="large")
    with pytest.raises(UserInputError, match="RMVPE weights not found"):
        F0Extractor("rmvpe", rmvpe_path=str(tmp_path / "nope.pt"))
    with pytest.raises(UserInputError, match=str(tmp_path / "rmvpe" / "rmvpe.pt")):
        F0Extractor("rmvpe", weights_dir=tmp_path)
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="CUDA"):
            F0Extractor("rmvpe_gpu", rmvpe_path=str(tmp_path / "nope.pt"))


def test_rmvpe_method_reproduces_reference(reference_dir: Path, tmp_path: Path) -> None:
    path = save_deterministic_weights(reference_dir, "RMVPE", tmp_path / "rmvpe.pt")
    ex = F0Extractor("rmvpe", rmvpe_path=str(path))
    audio = np.load(reference_dir / "rmvpe" / "input_16k.npy")
    np.testing.assert_allclose(
        ex.compute(audio), np.load(reference_dir / "rmvpe" / "rmvpe_expected_f0.npy"), rtol=1e-5, atol=1e-3
    )
    assert ex.settings.cache_settings()["weights"]  # keyed by the weights' content hash


def test_world_methods_keep_their_numbers(reference_dir: Path, repo_root: Path) -> None:
    """harvest/dio give exactly the f0 of the pyworld 0.3.5 source build the fixture was made with.

    The `pyworld` module comes from the `pyworld-prebuilt` wheel (no compiler in the images); the
    fixture holds `F0Extractor(m).compute(x)` for m in harvest, dio on 2 s of reference speech and
    1 s of the vibrato tone, computed with pyworld 0.3.5, so a WORLD build that moves a single frame fails.
    """
    expected = np.load(repo_root / "tests" / "fixtures" / "world_f0_pyworld035.npz")
    inputs = {
        "speech": np.load(reference_dir / "rmvpe" / "input_16k.npy"),
        "vibrato": make_signal("vibrato", 1.0).audio,
    }
    from scipy.signal import medfilt

    for method in ("harvest", "dio"):
        ex = F0Extractor(method)
        for name, audio in inputs.items():
            got = ex.compute(audio)
            if method == "harvest":  # the fixture was written when the extractor median-filtered harvest
                got = medfilt(got, 3).astype(np.float32)
            np.testing.assert_array_equal(got, expected[f"{name}_{method}"], err_msg=f"{name} {method}")
