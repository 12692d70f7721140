"""The retrieval index: the reference rule, each vector finds itself, the k-means branch, the stage."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from infer.lib.errors import UserInputError
from infer.lib.index import KMEANS_CENTERS, build_index, n_ivf_for, read_index, train_index
from infer.lib.layout import ExperimentLayout


def test_n_ivf_reference_rule() -> None:
    assert n_ivf_for(39) == 1
    assert n_ivf_for(10_000) == min(int(16 * 100), 10_000 // 39) == 256
    assert n_ivf_for(1_000_000) == 16_000


def test_each_vector_finds_itself() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 64)).astype(np.float32)
    index, info = build_index(x, seed=3)
    assert info == {
        "n_input_vectors": 3000,
        "n_indexed_vectors": 3000,
        "dim": 64,
        "n_ivf": n_ivf_for(3000),
        "kmeans": False,
        "gpu": False,
    }
    assert index.ntotal == 3000
    assert faiss.extract_index_ivf(index).nprobe == 1
    # Each vector's nearest neighbour is a stored copy of itself (the index holds them shuffled).
    dist, ids = index.search(x, 1)
    assert np.allclose(dist[:, 0], 0.0, atol=1e-4)
    faiss.extract_index_ivf(index).make_direct_map()
    stored = index.reconstruct_batch(ids[:, 0])
    assert np.array_equal(stored, x)


def test_too_few_vectors_and_nan_refused() -> None:
    with pytest.raises(UserInputError, match="at least 39"):
        build_index(np.zeros((10, 8), np.float32))
    x = np.ones((100, 8), np.float32)
    x[5, 3] = np.nan
    with pytest.raises(UserInputError, match="NaN"):
        build_index(x)


def test_kmeans_branch_small_threshold() -> None:
    # The same branch with a lower threshold, cheap enough for every run.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5200, 8)).astype(np.float32)
    index, info = build_index(x, kmeans_threshold=5000, n_centers=100)
    assert info["kmeans"] is True and index.ntotal == 100 and info["n_ivf"] == n_ivf_for(100) == 2


@pytest.mark.slow
def test_kmeans_branch_over_200k_vectors() -> None:
    # More than 200,000 vectors: reduced to 10,000 centres first (the reference crashes here).
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((500, 32)).astype(np.float32) * 4
    x = centres[rng.integers(0, 500, 200_200)] + rng.standard_normal((200_200, 32)).astype(np.float32) * 0.1
    index, info = build_index(x)
    assert info["kmeans"] is True
    assert info["n_input_vectors"] == 200_200
    assert info["n_indexed_vectors"] == KMEANS_CENTERS == index.ntotal
    assert info["n_ivf"] == n_ivf_for(KMEANS_CENTERS) == 256
    # The centres summarise the data: every true cluster centre has an indexed centre close to it.
    index.nprobe = 8
    dist, _ = index.search(centres, 1)
    assert float(np.sqrt(dist.max())) < 1.0


def test_stage_writes_reference_file_name(tmp_path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v1")
    exp.make_dirs()
    rng = np.random.default_rng(2)
    for i in range(4):
        np.save(exp.feature_dir / f"0_{i}.npy", rng.standard_normal((100 + i, 256)).astype(np.float32))
    (exp.feature_dir / ".0_9.tmp-x.npy").write_bytes(b"junk")  # temp files are skipped
    rep = train_index(exp, "joe")
    n_ivf = n_ivf_for(406)
    assert rep.path == str(exp.root / f"added_IVF{n_ivf}_Flat_nprobe_1_joe_v1.index")
    idx = read_index(Path(rep.path))
    assert idx.ntotal == 406 and idx.d == 256
    assert rep.to_dict()["n_indexed_vectors"] == 406
    # a second run replaces the first index, never leaves two
    np.save(exp.feature_dir / "1_0.npy", rng.standard_normal((2000, 256)).astype(np.float32))
    rep2 = train_index(exp, "joe")
    assert [p.name for p in exp.root.glob("*.index")] == [rep2.path.split("/")[-1]]


def test_stage_without_features_is_a_user_error(tmp_path) -> None:
    exp = ExperimentLayout(tmp_path / "exp", "v2")
    exp.make_dirs()
    with pytest.raises(UserInputError, match="feature extraction"):
        train_index(exp, "x")


def test_load_features_shuffles_in_place_with_one_copy(tmp_path) -> None:
    """The shuffled load equals concatenate-then-permute, and holds only one full-size array."""
    import tracemalloc

    from infer.lib.index import load_features

    rng = np.random.default_rng(1)
    parts = [rng.standard_normal((int(n), 64)).astype(np.float32) for n in rng.integers(50, 400, 40)]
    for i, a in enumerate(parts):
        np.save(tmp_path / f"0_{i:03d}.npy", a)
    whole = np.concatenate(parts)
    assert np.array_equal(load_features(tmp_path), whole)
    tracemalloc.start()
    shuffled = load_features(tmp_path, permutation_seed=7)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert np.array_equal(shuffled, whole[np.random.default_rng(7).permutation(len(whole))])
    assert peak < 1.5 * whole.nbytes  # the result, the permutation and one file at a time
