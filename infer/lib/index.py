"""The retrieval index: every training feature vector in a FAISS `IVF<n>,Flat` index (the reference rule).

Conversion looks up, for each frame of the source voice, the nearest training frames and blends
their features in (`index_rate`). The reference recipe, which RVC WebUI and Applio expect:

- all feature frames of the training set (`3_feature256|768/*.npy`), concatenated and shuffled;
- more than 200,000 vectors: MiniBatchKMeans (scikit-learn) down to 10,000 centres first;
- `n_ivf = min(int(16 * sqrt(N)), N // 39)` inverted lists, `nprobe = 1`;
- vectors added in batches of 8192; file `added_IVF<n>_Flat_nprobe_1_<name>_<version>.index`.

faiss-gpu is used for training the coarse quantiser when the installed faiss has GPUs, else faiss-cpu;
the written file is a CPU index either way.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from infer.lib.errors import UserInputError
from infer.lib.fileio import atomic_path
from infer.lib.layout import ExperimentLayout
from infer.lib.log import get_logger

KMEANS_THRESHOLD = 200_000
KMEANS_CENTERS = 10_000
ADD_BATCH = 8192
MIN_VECTORS = 39  # N // 39 must be >= 1 for a single inverted list

_log = get_logger("index")


@dataclass(frozen=True)
class IndexReport:
    """What the index stage did: input vectors, vectors indexed, lists, file and timings (seconds)."""

    path: str
    n_input_vectors: int
    n_indexed_vectors: int
    dim: int
    n_ivf: int
    kmeans: bool
    gpu: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def n_ivf_for(n_vectors: int) -> int:
    """Inverted lists for `n_vectors`: `min(int(16 * sqrt(N)), N // 39)` (the reference rule)."""
    return min(int(16 * np.sqrt(n_vectors)), n_vectors // 39)


def load_features(feature_dir: Path, permutation_seed: int | None = None) -> np.ndarray:
    """All `*.npy` feature files in `feature_dir`, sorted by name, concatenated: float32 [N, dim].

    With `permutation_seed`, the rows come back shuffled exactly as
    `concatenated[np.random.default_rng(seed).permutation(N)]`, but filled in place: the result is
    the only full-size array ever held (an hour of v2 features is about 1.1 GB), which keeps the index
    stage's peak memory at one copy of the features.
    """
    files = sorted(p for p in Path(feature_dir).glob("*.npy") if not p.name.startswith("."))
    if not files:
        raise UserInputError(f"no feature files in {feature_dir}: run feature extraction before building the index")
    rows: list[int] = []
    dims: set[int] = set()
    for p in files:
        shape = np.load(p, mmap_mode="r", allow_pickle=False).shape  # header only
        if len(shape) != 2:
            raise UserInputError(f"feature file {p} has shape {shape}, expected [frames, dim]")
        rows.append(shape[0])
        dims.add(shape[1])
    if len(dims) != 1:
        raise UserInputError(f"feature files in {feature_dir} have different widths {sorted(dims)}")
    n = sum(rows)
    out = np.empty((n, dims.pop()), dtype=np.float32)
    dest: np.ndarray | None = None
    if permutation_seed is not None:
        perm = np.random.default_rng(permutation_seed).permutation(n)
        dest = np.empty_like(perm)
        dest[perm] = np.arange(n)  # row i of the concatenation goes to dest[i]
    o = 0
    for p, k in zip(files, rows, strict=True):
        a = np.load(p, allow_pickle=False)
        if dest is None:
            out[o : o + k] = a
        else:
            out[dest[o : o + k]] = a
        o += k
    return out


def reduce_kmeans(vectors: np.ndarray, n_centers: int = KMEANS_CENTERS, seed: int = 0) -> np.ndarray:
    """MiniBatchKMeans centres of `vectors` [N, dim] -> float32 [n_centers, dim] (the reference settings)."""
    from sklearn.cluster import MiniBatchKMeans

    n_cpu = os.cpu_count() or 1
    km = MiniBatchKMeans(
        n_clusters=n_centers,
        batch_size=256 * n_cpu,
        compute_labels=False,
        init="random",
        n_init=1,
        random_state=seed,
    )
    km.fit(vectors)
    return np.ascontiguousarray(km.cluster_centers_, dtype=np.float32)


def _faiss_gpus(faiss: Any) -> int:
    try:
        return int(faiss.get_num_gpus())
    except AttributeError:  # faiss-cpu builds have no GPU functions
        return 0


def _checked_vectors(vectors: np.ndarray) -> np.ndarray:
    """`vectors` as contiguous float32 [N, dim]; UserInputError when not 2-D, not finite or too few rows."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise UserInputError(f"index input must be [N, dim], got shape {vectors.shape}")
    n_in = vectors.shape[0]
    if not all(np.isfinite(vectors[i : i + 65536]).all() for i in range(0, n_in, 65536)):
        raise UserInputError("feature vectors contain NaN or infinity: re-run feature extraction")
    if n_in < MIN_VECTORS:
        raise UserInputError(
            f"only {n_in} feature frames: the index needs at least {MIN_VECTORS} (about 0.8 s of audio)"
        )
    return vectors


def _vectors_to_index(
    vectors: np.ndarray, seed: int, shuffled: bool, kmeans_threshold: int, n_centers: int
) -> tuple[np.ndarray, bool]:
    """The rows to index: `vectors` shuffled (unless `shuffled`), then k-means centres when N >
    `kmeans_threshold`; returns (rows float32 [n, dim], whether k-means ran)."""
    n_in = vectors.shape[0]
    if not shuffled:
        vectors = vectors[np.random.default_rng(seed).permutation(n_in)]
    kmeans = n_in > kmeans_threshold
    if kmeans:
        _log.info("index: %d vectors > %d, MiniBatchKMeans to %d centres first", n_in, kmeans_threshold, n_centers)
        t = time.monotonic()
        vectors = reduce_kmeans(vectors, n_centers, seed)
        _log.info("index: k-means done in %.1fs", time.monotonic() - t)
    return vectors, kmeans


def _gpu_clustering(faiss: Any, ivf: Any, dim: int, use_gpu: bool | None) -> bool:
    """Point `ivf`'s coarse-quantiser training at a GPU flat index when faiss has GPUs and `use_gpu`
    allows; returns whether it did (a failure is logged and training stays on the CPU)."""
    gpus = _faiss_gpus(faiss) if use_gpu is None or use_gpu else 0
    if gpus > 0:
        try:
            # Train the coarse quantiser's k-means on the GPU, keep the index itself on the CPU.
            clus_index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatL2(dim))
            ivf.clustering_index = clus_index
            return True
        except Exception as e:  # a faiss-gpu build without a usable GPU: say so, go on on the CPU
            _log.warning("index: faiss GPU training unavailable (%s); training on the CPU", e)
    return False


def _train_and_fill(faiss: Any, vectors: np.ndarray, n_ivf: int, use_gpu: bool | None) -> tuple[Any, bool]:
    """An `IVF<n_ivf>,Flat` CPU index (nprobe 1) trained on and filled with `vectors` float32 [n, dim]
    in batches of `ADD_BATCH`; returns (index, whether its quantiser trained on a GPU)."""
    n, dim = vectors.shape
    index = faiss.index_factory(dim, f"IVF{n_ivf},Flat")
    ivf = faiss.extract_index_ivf(index)
    ivf.nprobe = 1
    cpu_clustering = ivf.clustering_index  # none: the quantiser's own k-means
    on_gpu = _gpu_clustering(faiss, ivf, dim, use_gpu)
    _log.info("index: training IVF%d,Flat on %d x %d vectors (%s)", n_ivf, n, dim, "GPU" if on_gpu else "CPU")
    index.train(vectors)
    if on_gpu:
        ivf.clustering_index = cpu_clustering
    for i in range(0, n, ADD_BATCH):
        index.add(vectors[i : i + ADD_BATCH])
    return index, on_gpu


def build_index(
    vectors: np.ndarray,
    seed: int = 0,
    use_gpu: bool | None = None,
    kmeans_threshold: int = KMEANS_THRESHOLD,
    n_centers: int = KMEANS_CENTERS,
    shuffled: bool = False,
) -> tuple[Any, dict[str, Any]]:
    """A trained, filled `IVF<n>,Flat` index (nprobe 1) over `vectors` float32 [N, dim].

    The vectors are shuffled (with `seed`; pass `shuffled=True` when `load_features` already did it
    with the same seed), reduced by k-means when N > `kmeans_threshold`, then
    indexed. Returns `(faiss_index, info)` with info keys n_input_vectors, n_indexed_vectors, dim,
    n_ivf, kmeans, gpu.
    """
    import faiss

    vectors = _checked_vectors(vectors)
    n_in, dim = vectors.shape
    vectors, kmeans = _vectors_to_index(vectors, seed, shuffled, kmeans_threshold, n_centers)
    n_ivf = n_ivf_for(vectors.shape[0])
    index, on_gpu = _train_and_fill(faiss, vectors, n_ivf, use_gpu)
    info = {
        "n_input_vectors": int(n_in),
        "n_indexed_vectors": int(index.ntotal),
        "dim": int(dim),
        "n_ivf": int(n_ivf),
        "kmeans": bool(kmeans),
        "gpu": on_gpu,
    }
    return index, info


def write_index(index: Any, path: Path) -> Path:
    """Write a faiss index atomically to `path`."""
    import faiss

    with atomic_path(path) as tmp:
        faiss.write_index(index, str(tmp))
    return Path(path)


def read_index(path: Path) -> Any:
    """Read a faiss index (CPU)."""
    import faiss

    return faiss.read_index(str(path))


def train_index(exp: ExperimentLayout, name: str, seed: int = 0, use_gpu: bool | None = None) -> IndexReport:
    """The index stage: features of `exp` -> `exp.index_path(name, n_ivf)`; returns an `IndexReport`.

    Older `added_*.index` files in the experiment folder are removed so exactly one index remains.
    """
    t0 = time.monotonic()
    vectors = load_features(exp.feature_dir, permutation_seed=seed)
    index, info = build_index(vectors, seed=seed, use_gpu=use_gpu, shuffled=True)
    path = exp.index_path(name, info["n_ivf"])
    for old in exp.root.glob("added_IVF*_Flat_nprobe_1_*.index"):
        if old != path:
            old.unlink(missing_ok=True)
    write_index(index, path)
    report = IndexReport(path=str(path), seconds=round(time.monotonic() - t0, 3), **info)
    _log.info(
        "index: %s (%d vectors, IVF%d) in %.1fs", path.name, report.n_indexed_vectors, report.n_ivf, report.seconds
    )
    return report
