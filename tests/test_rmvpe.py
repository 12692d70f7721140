"""RMVPE: parameter names of the published file, the reference fixtures, loading, batching, windowing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from infer.lib.errors import UserInputError, WeightsError
from infer.lib.rmvpe import RMVPE, RMVPENet, decode_salience, load_rmvpe, n_frames_for
from infer.lib.standin import STANDIN_KEY, read_sidecar
from tests.support.reference_weights import save_deterministic_weights
from tools.standin_writers import write_standin_rmvpe


@pytest.fixture(scope="module")
def rmvpe_file(reference_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The deterministic weights saved as the published format: a bare state dict."""
    path = tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt"
    return save_deterministic_weights(reference_dir, "RMVPE", path)


@pytest.fixture(scope="module")
def model(rmvpe_file: Path) -> RMVPE:
    return load_rmvpe(rmvpe_file, "cpu")


def test_state_dict_matches_published_layout(reference_dir: Path) -> None:
    entry = json.loads((reference_dir / "rvc_state_dicts.json").read_text())["RMVPE"]
    ours = {k: list(v.shape) for k, v in RMVPENet().state_dict().items()}
    assert ours == entry["state_dict"]  # same names, same order, same shapes
    assert sum(p.numel() for p in RMVPENet().parameters()) == entry["n_params"]


def test_reference_fixtures(model: RMVPE, reference_dir: Path) -> None:
    ref = reference_dir / "rmvpe"
    audio = np.load(ref / "input_16k.npy")
    mel = model.log_mel(audio)
    expected_mel = np.load(ref / "rmvpe_expected_mel.npy")
    assert mel.shape == (1, *expected_mel.shape) == (1, 128, n_frames_for(len(audio)))
    np.testing.assert_allclose(mel[0].numpy(), expected_mel, atol=1e-4)
    sal = model.salience(mel).numpy()
    np.testing.assert_allclose(sal, np.load(ref / "rmvpe_expected_salience.npy"), atol=1e-4)
    f0 = model.infer_from_audio(audio, threshold=0.03)
    expected_f0 = np.load(ref / "rmvpe_expected_f0.npy")
    assert f0.dtype == np.float32 and f0.shape == expected_f0.shape
    assert ((f0 > 0) == (expected_f0 > 0)).all()
    np.testing.assert_allclose(f0, expected_f0, rtol=1e-4, atol=1e-3)


def test_decode_salience_local_average_and_threshold() -> None:
    sal = np.zeros((3, 360), np.float32)
    sal[0, 100] = 0.5  # one bin: exactly that bin's cents
    sal[1, 100] = sal[1, 101] = 0.5  # two equal bins: half-way (10 cents above bin 100)
    sal[2, 200] = 0.03  # at the threshold: unvoiced
    f0 = decode_salience(sal, threshold=0.03)
    cents = 20 * 100 + 1997.3794084376191
    np.testing.assert_allclose(f0[:2], [10 * 2 ** (cents / 1200), 10 * 2 ** ((cents + 10) / 1200)], rtol=1e-5)
    assert f0[2] == 0.0
    sal[0, 359] = 0.9  # peak at the top edge: the window reads the zero padding
    assert decode_salience(sal)[0] == pytest.approx(10 * 2 ** ((20 * 359 + 1997.3794084376191) / 1200), rel=1e-5)


def speech_16k(joe_1min: Path, seconds: float) -> np.ndarray:
    import soundfile as sf
    from scipy.signal import resample_poly

    audio, sr = sf.read(str(joe_1min / "joe_000.wav"), dtype="float32", frames=int(22050 * seconds))
    assert sr == 22050
    return resample_poly(audio, 320, 441).astype(np.float32)


def test_batched_segments_equal_single(model: RMVPE, joe_1min: Path) -> None:
    audio = speech_16k(joe_1min, 1.2)
    segs = [audio[:9600], audio[4000:13550], audio[:5000]]  # two share a padded length, one does not
    batched = model.infer_batch(segs)
    for seg, got in zip(segs, batched, strict=True):
        alone = model.infer_from_audio(seg)
        assert got.shape == alone.shape == (n_frames_for(len(seg)),)
        np.testing.assert_allclose(got, alone, atol=0.05)


def test_long_audio_is_windowed(model: RMVPE, joe_1min: Path) -> None:
    audio = speech_16k(joe_1min, 1.6)
    windowed = RMVPE(model.net, chunk_frames=64, margin_frames=32, batch_size=3)
    mel = model.log_mel(audio)
    whole = model.salience(mel).numpy()
    parts = windowed.salience(mel).numpy()
    assert parts.shape == whole.shape == (n_frames_for(len(audio)), 360)
    # the windows see less context (the BiGRU spans the whole input), so values differ somewhat;
    # with the deterministic random weights the salience still correlates strongly
    assert np.corrcoef(whole.ravel(), parts.ravel())[0, 1] > 0.85
    short = RMVPE(model.net, chunk_frames=192, margin_frames=64)  # clip fits one window: run whole
    np.testing.assert_array_equal(short.salience(mel).numpy(), whole)


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(UserInputError, match="not found"):
        load_rmvpe(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    torch.save({"cnn.weight": torch.zeros(3, 16, 3, 3)}, bad)
    with pytest.raises(WeightsError, match="RMVPE"):
        load_rmvpe(bad)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError):
        load_rmvpe(junk)


def test_standin_file_has_published_format_and_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write_standin_rmvpe(tmp_path / "rmvpe" / "rmvpe.pt")
    sd = torch.load(path, map_location="cpu", weights_only=True)
    assert STANDIN_KEY not in sd  # exactly the published layout: a strict loader takes the file as it is
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in RMVPENet().state_dict().items()}
    RMVPENet().load_state_dict(sd, strict=True)
    assert "stand-in" in (read_sidecar(path) or "")
    root = logging.getLogger("rvc")
    old = root.propagate
    root.propagate = True  # let caplog see the project's logger
    try:
        with caplog.at_level(logging.WARNING, logger="rvc"):
            m = load_rmvpe(path)
    finally:
        root.propagate = old
    assert any("stand-in" in r.getMessage() for r in caplog.records)
    f0 = m.infer_from_audio(np.zeros(3200, np.float32))
    assert f0.shape == (21,) and np.isfinite(f0).all()


def test_folded_batchnorm_gives_the_same_salience(rmvpe_file: Path) -> None:
    """The inference copy folds each conv's BatchNorm into it: the salience of the published layout
    (plain eval net, BatchNorms with non-trivial statistics) to float rounding, and folding is idempotent."""
    from infer.lib.rmvpe import fold_batchnorm

    net = RMVPENet()
    net.load_state_dict(torch.load(rmvpe_file, weights_only=True))
    gen = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):  # the deterministic weights' statistics, made less trivial
            assert m.running_mean is not None and m.running_var is not None
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=gen))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    net.eval()
    mel = torch.randn(2, 128, 64, generator=gen)
    with torch.inference_mode():
        plain = net(mel)
        runner = RMVPE(net)
        n_bn = sum(isinstance(m, torch.nn.BatchNorm2d) for m in runner.net.modules())
        folded = runner.net(mel)
        again = fold_batchnorm(runner.net)(mel)
    assert n_bn == 1  # only the input BatchNorm is left
    assert (folded - plain).abs().max().item() < 1e-4 and plain.std().item() > 1e-3  # measured 1.1e-5
    assert torch.equal(again, folded)
