"""Voice conversion (issue 8): the algorithm's steps, then whole conversions with real tiny models."""

from __future__ import annotations

import numpy as np
import pytest

from infer.lib.errors import UserInputError
from infer.modules.vc.pipeline import (
    FRAME,
    ConvertParams,
    FeatureIndex,
    WindowConfig,
    high_pass,
    mix_rms,
    plan_windows,
    retrieve_features,
)
from infer.modules.vc.vc import pick_preview_excerpt, read_feature_index

SR16 = 16000


def _faiss_index(vectors: np.ndarray, ivf: int = 0):
    import faiss

    d = vectors.shape[1]
    if ivf:
        index = faiss.index_factory(d, f"IVF{ivf},Flat")
        index.train(vectors)
    else:
        index = faiss.IndexFlatL2(d)
    index.add(vectors)
    return index


# ------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "bad",
    [
        {"index_rate": 1.5},
        {"protect": 0.7},
        {"rms_mix_rate": -0.1},
        {"resample_sr": 8000},
        {"f0_method": "yin"},
        {"f0_up_key": 60},
        {"speaker_id": -1},
        {"filter_radius": 9},
    ],
)
def test_params_refuse_bad_values_with_a_clear_message(bad):
    with pytest.raises(UserInputError) as e:
        ConvertParams(**bad)
    assert next(iter(bad)) in str(e.value)


# ------------------------------------------------------------------------------------ windows
def test_short_input_is_one_window():
    x = np.random.default_rng(0).normal(size=SR16 * 5).astype(np.float32)
    assert plan_windows(x, WindowConfig()) == [(0, 500)]


def test_long_input_splits_at_the_quiet_points():
    rng = np.random.default_rng(1)
    n = SR16 * 30
    x = rng.normal(0, 0.3, size=n).astype(np.float32)
    quiet = [int(8.3 * SR16), int(21.7 * SR16)]  # 50 ms of near-silence near each nominal split
    for q in quiet:
        x[q : q + 800] *= 1e-4
    w = WindowConfig(pad_s=0.5, query_s=2.0, center_s=10.0, max_s=12.0)
    spans = plan_windows(x, w)
    # tiles every frame, no gaps, no overlap
    assert spans[0][0] == 0 and spans[-1][1] == -(-n // FRAME)
    assert all(b == c for (_, b), (c, _) in zip(spans[:-1], spans[1:]))
    starts = [a * FRAME for a, _ in spans[1:]]
    assert len(starts) == 2
    for s, q in zip(starts, quiet):
        assert q - FRAME <= s <= q + 800, (s, q)


def test_high_pass_removes_rumble_and_keeps_speech_band():
    t = np.arange(SR16 * 2) / SR16
    low = np.sin(2 * np.pi * 20 * t)
    mid = np.sin(2 * np.pi * 300 * t)
    y_low, y_mid = high_pass(low.astype(np.float32)), high_pass(mid.astype(np.float32))
    core = slice(SR16 // 2, -SR16 // 2)
    assert np.std(y_low[core]) < 0.02 * np.std(low[core])
    assert abs(np.std(y_mid[core]) / np.std(mid[core]) - 1) < 0.01


# ------------------------------------------------------------------------------------ retrieval
def test_retrieval_weights_neighbours_by_inverse_square_distance():
    rng = np.random.default_rng(2)
    vectors = rng.normal(size=(500, 16)).astype(np.float32)
    index = FeatureIndex(_faiss_index(vectors), vectors)
    q = rng.normal(size=(7, 16)).astype(np.float32)
    got = retrieve_features(q, index)
    d2 = ((q[:, None, :] - vectors[None]) ** 2).sum(-1)  # squared distances, as faiss reports
    nn = np.argsort(d2, axis=1)[:, :8]
    w = 1.0 / np.take_along_axis(d2, nn, 1) ** 2
    want = (vectors[nn] * (w / w.sum(1, keepdims=True))[..., None]).sum(1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    # an exact match takes all the weight
    np.testing.assert_allclose(retrieve_features(vectors[3:4], index), vectors[3:4], atol=1e-5)


def test_retrieval_with_unfilled_neighbours_and_an_ivf_index(tmp_path):
    import faiss

    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(400, 8)).astype(np.float32)
    path = tmp_path / "added_IVF10_Flat_nprobe_1_x_v1.index"
    faiss.write_index(_faiss_index(vectors, ivf=10), str(path))
    idx = read_feature_index(path)
    assert idx.size == 400 and idx.dim == 8
    assert sorted(map(tuple, idx.vectors.round(5))) == sorted(map(tuple, vectors.round(5)))
    got = retrieve_features(rng.normal(size=(50, 8)).astype(np.float32), idx)
    assert np.all(np.isfinite(got))


def test_not_an_index_file_is_refused(tmp_path):
    bad = tmp_path / "model.index"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(UserInputError, match="not a FAISS index"):
        read_feature_index(bad)


# ------------------------------------------------------------------------------------ loudness
def test_rms_mix_moves_the_envelope_towards_the_source():
    rng = np.random.default_rng(4)
    src = (rng.normal(size=SR16 * 4) * np.repeat([0.05, 0.4, 0.05, 0.4], SR16)).astype(np.float32)
    out_sr = 40000
    conv = (rng.normal(size=out_sr * 4) * 0.2).astype(np.float32)
    np.testing.assert_array_equal(mix_rms(src, conv.copy(), out_sr, 1.0), conv)
    y = mix_rms(src, conv.copy(), out_sr, 0.0)
    q, l2 = np.std(y[int(0.3 * out_sr) : int(0.7 * out_sr)]), np.std(y[int(1.3 * out_sr) : int(1.7 * out_sr)])
    assert l2 / q > 4  # the quiet/loud pattern of the source is copied


def test_preview_excerpt_is_the_loudest_stretch():
    x = np.zeros(SR16 * 20, np.float32)
    x[SR16 * 12 : SR16 * 15] = 0.5
    ex = pick_preview_excerpt(x, SR16, 4.0)
    assert len(ex) == SR16 * 4 and np.count_nonzero(ex) == SR16 * 3
