"""`f0_up_key=12` doubles the measured pitch of the converted OUTPUT (not only of the NSF source).

A random-weight generator's output pitch is unrelated to its pitch input (see
`test_vc.test_f0_up_key_12_doubles_the_pitch_of_the_nsf_excitation`), so these tests use a tiny
pitch-guided v2 40k generator briefly trained on synthetic harmonic tones by
`tests/make_pitch_fixture.py` (conversion-path mel L1 + low-band log-spectrum L1, no discriminator;
content input is pitch-free noise, so the network can only learn pitch from its pitch inputs).

Training takes ~1-4 min on the shared 2-core CPU (400 steps, 0.13-0.5 s each with the load),
more than a default test run may spend, so:
- the default test converts with the committed fixture `tests/fixtures/tiny_pitch_v2_40k.pth`
  (253 KiB), written by `python -m tests.make_pitch_fixture` (deterministic: seed 0, one thread);
- the slow test re-trains that model from scratch with the same code (seed 0, one thread) and
  checks the same behaviour, so the fixture is what the committed script produces.
Honest caveat: the recipe is seed-dependent. Seed 0 learns to follow its pitch input (at 400 and at
800 steps); seeds 1 and 2 did not within 800 steps (their output stays a frame-rate buzz at 50/100 Hz
whatever the pitch). What these tests establish is the conversion's part: given a generator that
follows its pitch input, the pipeline's `f0_up_key` moves the OUTPUT pitch by the right interval.

Measured when written (Praat median f0 of the 40 kHz output, 130 Hz source, pm): key 0 -> 130.0 Hz,
key 12 -> 260.5 Hz (ratio 2.005), key 7 -> 195.3 Hz, key -12 -> 64.9 Hz; with a 200 Hz source
200.0 / 400.0 Hz.

The conversion is the real one: `VC` with the published HuBERT base architecture (stand-in values:
its features carry no pitch), pm pitch extraction, and the output's median pitch measured by Praat.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.make_pitch_fixture import FIXTURE

SR16 = 16000
SOURCE_HZ = 130.0  # inside the training range 90..330 Hz, and so is its octave


@pytest.fixture(scope="module")
def vc(standin_hubert):
    from infer.modules.vc import VC
    from infer.modules.vc.pipeline import WindowConfig

    return VC(device="cpu", hubert_path=standin_hubert, window=WindowConfig(pad_s=0.2))


def _tone(f0: float, seconds: float = 2.0) -> np.ndarray:
    """A harmonic tone (7 harmonics, 1/k amplitudes) at 16 kHz."""
    t = np.arange(int(seconds * SR16)) / SR16
    return sum((0.3 / k * np.sin(2 * np.pi * f0 * k * t) for k in range(1, 8)), np.zeros_like(t)).astype(np.float32)


def _pitch_hz(audio: np.ndarray, sr: int) -> tuple[float, float]:
    """Median f0 (Hz) of the voiced frames and the voiced share, measured by Praat (autocorrelation)."""
    import parselmouth

    p = parselmouth.Sound(audio.astype(np.float64), sr).to_pitch_ac(time_step=0.01, pitch_floor=50, pitch_ceiling=1100)
    f = p.selected_array["frequency"]
    return (float(np.median(f[f > 0])) if np.any(f > 0) else 0.0), float(np.mean(f > 0))


def _measure(vc, model: Path) -> dict[int, tuple[float, float]]:
    src = _tone(SOURCE_HZ)
    got = {}
    for key in (0, 12, 7):
        audio, rate = vc.convert(src, SR16, model, f0_up_key=key, f0_method="pm", index_rate=0.0, seed=0)
        assert rate == 40000 and len(audio) == 2 * rate
        core = audio[rate // 4 : -rate // 4]  # away from the edges
        got[key] = _pitch_hz(core, rate)
    return got


def _check_octave(got: dict[int, tuple[float, float]]) -> None:
    assert all(voiced > 0.8 for _, voiced in got.values()), got
    f_0, f_12, f_7 = got[0][0], got[12][0], got[7][0]
    assert abs(f_0 / SOURCE_HZ - 1.0) < 0.03, got  # key 0 keeps the source's pitch
    assert abs(f_12 / f_0 - 2.0) < 0.06, got  # key 12 doubles it
    assert abs(f_7 / f_0 - 2 ** (7 / 12)) < 0.04, got  # and a fifth is a fifth (not just "some octave")


def test_fixture_is_a_pitch_guided_v2_40k_model(vc):
    assert FIXTURE.is_file(), "run `python -m tests.make_pitch_fixture` to write the fixture"
    assert FIXTURE.stat().st_size < 400 * 1024
    model = vc.load_model(FIXTURE)
    assert (model.version, model.sample_rate, model.use_f0) == ("v2", 40000, True)


def test_f0_up_key_12_doubles_the_output_pitch(vc):
    """The committed briefly-trained model: output pitch follows the source, +12 semitones doubles it."""
    _check_octave(_measure(vc, FIXTURE))


@pytest.mark.slow
def test_f0_up_key_12_doubles_the_output_pitch_of_a_freshly_trained_model(vc, tmp_path):
    """Re-train the fixture's model from scratch (minutes on a CPU) and check the same behaviour."""
    import torch

    from tests.make_pitch_fixture import make_fixture

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the fixture script: the same arithmetic, so the same model
    try:
        path, facts = make_fixture(tmp_path / "fresh.pth")
    finally:
        torch.set_num_threads(threads)
    assert np.isfinite(facts["final_mel_l1"])
    _check_octave(_measure(vc, path))
