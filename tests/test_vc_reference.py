"""Conversion and training pitch against the reference RVC's own output (`tests/fixtures/vc_reference.npz`).

The fixture was written once by `tests/make_vc_reference_fixture.py` from the reference code
(RVC WebUI 20240604) with the same weights and inputs as here (see that script). Sampling noise is
fixed to zero on both sides. Checked:
- conversion (rmvpe and pm, pitch shift 0 and 12, index 0.75, protect 0.33, rms_mix_rate 0.25):
  SNR of ours against the reference >= 30 dB on the common length (the reference's output is
  2 frames shorter than the input, ours is the input's duration: `infer/modules/vc/pipeline.py`);
- training pitch (pm, harvest; `extract_f0_print.py`): the same frame count and at most 1% of
  frames differing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.make_vc_reference_fixture import (
    FIXTURE,
    INDEX_RATE,
    PROTECT,
    RMS_MIX_RATE,
    SETTINGS,
    TRAINING_METHODS,
    training_segments,
    write_index,
    write_model,
    zero_noise,
)

MIN_SNR_DB = 30.0


def snr_db(reference: np.ndarray, ours: np.ndarray) -> float:
    err = float(np.sum((reference.astype(np.float64) - ours) ** 2))
    return 10.0 * np.log10(float(np.sum(reference.astype(np.float64) ** 2)) / max(err, 1e-30))


@pytest.fixture(scope="module")
def fixture() -> dict[str, np.ndarray]:
    assert FIXTURE.is_file(), "run `python -m tests.make_vc_reference_fixture --reference <tree>`"
    assert FIXTURE.stat().st_size < 512 * 1024
    with np.load(FIXTURE) as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def clip(fixture: dict[str, np.ndarray]) -> np.ndarray:
    return fixture["input_int16"].astype(np.float32) / 32768.0


@pytest.fixture(scope="module")
def converted(
    tmp_path_factory: pytest.TempPathFactory, clip: np.ndarray, standin_hubert: Path, standin_rmvpe: Path
) -> dict[str, tuple[np.ndarray, int]]:
    from infer.modules.vc import VC
    from infer.modules.vc.pipeline import WindowConfig

    tmp = tmp_path_factory.mktemp("vcref")
    vc = VC(
        device="cpu",
        hubert_path=standin_hubert,
        rmvpe_path=standin_rmvpe,
        window=WindowConfig(),  # the reference's CPU windows (x_pad 1, x_query 6, x_center 38, x_max 41)
    )
    model, index = write_model(tmp / "model.pth"), write_index(tmp / "added_IVF1_Flat_nprobe_1_ref_v2.index")
    out = {}
    for method, key in SETTINGS:
        with zero_noise():
            out[f"vc_{method}_{key}"] = vc.convert(
                clip,
                16000,
                model,
                index,
                f0_up_key=key,
                f0_method=method,
                index_rate=INDEX_RATE,
                protect=PROTECT,
                rms_mix_rate=RMS_MIX_RATE,
                filter_radius=3,
            )
    return out


@pytest.mark.parametrize("method,key", SETTINGS, ids=[f"{m}-key{k}" for m, k in SETTINGS])
def test_conversion_matches_the_reference(
    method: str, key: int, fixture: dict[str, np.ndarray], clip: np.ndarray, converted: dict
) -> None:
    name = f"vc_{method}_{key}"
    ours, rate = converted[name]
    reference = fixture[name].astype(np.float64) / 32768.0
    assert rate == 40000 and len(ours) == len(clip) * rate // 16000  # the input's duration
    assert len(reference) == len(ours) - 2 * rate // 100  # the reference drops 2 frames at the end
    snr = snr_db(reference, ours[: len(reference)])
    assert snr >= MIN_SNR_DB, f"{name}: {snr:.1f} dB"


def test_settings_change_the_output(fixture: dict[str, np.ndarray]) -> None:
    """The fixture discriminates: pitch shift and pitch method change the reference's output a lot."""
    a, b, c = (fixture[f"vc_{m}_{k}"].astype(np.float64) for m, k in [("rmvpe", 0), ("rmvpe", 12), ("pm", 0)])
    assert snr_db(a, b) < 10 and snr_db(a, c) < 10


@pytest.mark.parametrize("method", TRAINING_METHODS)
def test_training_pitch_matches_the_reference(method: str, fixture: dict[str, np.ndarray], clip: np.ndarray) -> None:
    from infer.lib.f0 import F0Extractor

    ex = F0Extractor(method)
    for i, seg in enumerate(training_segments(clip)):
        want = fixture[f"train_{method}_{i}"]
        got = ex.compute(seg)
        assert got.shape == want.shape, (method, i)
        differ = ~np.isclose(got, want, rtol=1e-4, atol=1e-3)
        assert differ.mean() <= 0.01, (method, i, int(differ.sum()), float(np.abs(got - want).max()))
        assert (want > 0).any()


def test_fixture_inputs_are_what_the_script_uses(clip: np.ndarray) -> None:
    assert len(clip) == 24000 and 0.05 < np.abs(clip).max() < 0.95  # no peak normalisation involved
    assert Path(FIXTURE).name == "vc_reference.npz"
