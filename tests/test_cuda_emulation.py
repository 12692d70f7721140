"""The GPU path with CUDA emulated on the CPU (bench/cuda_emulation.py): device selection and
set_device, precision by compute capability, segment length, out-of-memory classification and the
fp16 + GradScaler retry, auto batch agreed across ranks, memory release, DDP start-up details.

Tensors stay on the CPU: what needs a real GPU is in `python -m bench.gpu_check`.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest
import torch

from bench.cuda_emulation import GiB, emulated_cuda
from bench.gpu_fixtures import tiny_experiment, tiny_settings
from infer.lib.errors import UserInputError
from tests.support.training import TinyModules

# ------------------------------------------------------------------------------------- device


@pytest.mark.parametrize("requested, index", [(None, 0), ("cuda", 0), ("cuda:0", 0), ("cuda:1", 1)])
def test_trainer_gets_past_device_selection(tmp_path: Path, requested: str | None, index: int) -> None:
    # The Predictor's default (None) and "cuda" gave torch.device("cuda") without an index, which
    # torch.cuda.set_device refuses (ValueError) after minutes of preprocessing.
    from infer.modules.train.loop import _Trainer

    exp = tiny_experiment(tmp_path / "exp", n=2)
    with emulated_cuda(n_devices=2, capability=(8, 6)) as fake:
        tr = _Trainer(tiny_settings(exp, device=requested), 0, 1, 0, None)
    assert tr.device == torch.device("cuda", index)
    assert fake.set_device_calls == [index]
    assert tr.precision.name == "bf16"


def test_pick_device_indexes_cuda_and_refuses_a_missing_gpu() -> None:
    from infer.lib.device import pick_device

    with emulated_cuda(n_devices=2) as fake:
        fake.current = 1
        assert pick_device(None) == pick_device("cuda") == torch.device("cuda", 1)
        assert pick_device("cuda:0") == torch.device("cuda", 0) and pick_device("cpu") == torch.device("cpu")
    with emulated_cuda(n_devices=1):
        with pytest.raises(UserInputError, match=r"1 GPU\(s\)"):
            pick_device("cuda:1")
    if not torch.cuda.is_available():
        with pytest.raises(UserInputError, match="no CUDA GPU"):
            pick_device("cuda")


# ------------------------------------------------------------------------------------- precision


@pytest.mark.parametrize(
    "cap, name, want",
    [
        ((7, 0), "Tesla V100-SXM2-16GB", "fp16"),
        ((7, 5), "Tesla T4", "fp16"),
        ((8, 0), "NVIDIA A100-SXM4-40GB", "bf16"),
        ((9, 0), "NVIDIA H100 80GB HBM3", "bf16"),
        ((6, 1), "Tesla P40", "fp32"),
        ((7, 5), "NVIDIA GeForce GTX 1660 Ti", "fp32"),
    ],
)
def test_precision_by_compute_capability(cap: tuple[int, int], name: str, want: str) -> None:
    # torch.cuda.is_bf16_supported() is True on a T4 and a V100 too (emulated bf16, no cuDNN bf16 convs).
    from infer.lib.device import pick_device, training_precision

    with emulated_cuda(capability=cap, name=name):
        p = training_precision(pick_device("cuda"))
    assert p.name == want
    assert p.use_grad_scaler == (want == "fp16")


def test_forced_precisions() -> None:
    from infer.lib.device import training_precision

    cpu = torch.device("cpu")
    assert training_precision(cpu).name == "fp32"
    assert (training_precision(cpu, "fp16").name, training_precision(cpu, "fp16").use_grad_scaler) == ("fp16", True)
    with emulated_cuda(capability=(7, 5), name="Tesla T4"):
        with pytest.raises(UserInputError, match="native bf16"):
            training_precision(torch.device("cuda", 0), "bf16")
    with pytest.raises(UserInputError, match="precision must be one of"):
        training_precision(cpu, "fp8")


# ------------------------------------------------------------------------------------- segments


@pytest.mark.parametrize(
    "cap, name, total_gib, want",
    [
        ((8, 9), "NVIDIA L40S", 46, 3.7),
        ((7, 5), "Tesla T4", 15, 3.7),
        ((6, 1), "Tesla P40", 24, 3.0),
        ((7, 5), "NVIDIA GeForce GTX 1650", 4, 3.0),
    ],
)
def test_preprocess_segments_follow_the_reference_on_gpu(
    tmp_path: Path,
    tiny_modules: TinyModules,
    joe_1min: Path,
    cap: Any,
    name: str,
    total_gib: int,
    want: float,
) -> None:
    # 3.7 s as the reference and the README, 3.0 s only on fp32-only GPUs and cards of <= 4 GB.
    tm = tiny_modules(tmp_path / "exp", device="cuda")
    tm.exp.make_dirs()
    with emulated_cuda(capability=cap, name=name, total_bytes=total_gib * GiB, free_bytes=[total_gib * GiB // 2]):
        rep = tm.preprocess(sorted(joe_1min.glob("*.wav"))[:1])
    assert rep.segment_s == want


# ------------------------------------------------------------------------------------- out of memory


@pytest.mark.parametrize(
    "exc, oom",
    [
        (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), True),
        (RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED"), True),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
        (RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"), True),
        (RuntimeError("Expected all tensors to be on the same device"), False),
        (ValueError("out of memory"), False),
    ],
)
def test_out_of_memory_classification(exc: BaseException, oom: bool) -> None:
    from infer.lib.device import is_out_of_memory

    assert is_out_of_memory(exc) is oom


def _scaled(monkeypatch: pytest.MonkeyPatch, dtype: torch.dtype) -> None:
    """Train with a GradScaler under CPU autocast in `dtype`, the code path of a GPU without native bf16
    (bf16 runs the same scaler code at the CPU's bf16 speed; fp16 is emulated and slow on CPUs)."""
    import infer.modules.train.loop as loop_mod
    from infer.lib.device import Precision

    monkeypatch.setattr(loop_mod, "training_precision", lambda dev, *a, **k: Precision(dev, dtype, True))


def _oom_after_unscale(monkeypatch: pytest.MonkeyPatch, at_call: int, exc: BaseException) -> None:
    """Raise `exc` at the `at_call`-th gradient-norm check, i.e. right after a `scaler.unscale_()`
    (calls 1, 2 are step 1's discriminator and generator, 3 is step 2's discriminator)."""
    import infer.modules.train.step as step_mod

    real = step_mod._finite_grad_norm
    calls = [0]

    def norm(params: list[torch.nn.Parameter]) -> float:
        calls[0] += 1
        if calls[0] == at_call:
            raise exc
        return real(params)

    monkeypatch.setattr(step_mod, "_finite_grad_norm", norm)


def _steps_per_epoch(exp: Any, bs: int) -> int:
    from infer.modules.train.data import BucketBatchSampler, wav_frames
    from infer.modules.train.filelist import read_filelist

    return len(BucketBatchSampler([wav_frames(str(e.gt_wav), 400) for e in read_filelist(exp.filelist_path)], bs))


def test_scaled_out_of_memory_after_unscale_retries_the_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An OOM after the discriminator's scaler.unscale_() left the GradScaler mid-step: the retried
    # epoch failed with "unscale_() has already been called on this optimizer since the last update()".
    from infer.modules.train.train import train

    exp = tiny_experiment(tmp_path / "exp", n=4, seconds=1.0)
    _scaled(monkeypatch, torch.bfloat16)
    _oom_after_unscale(monkeypatch, 3, torch.cuda.OutOfMemoryError("CUDA out of memory"))
    rep = train(tiny_settings(exp, epochs=1, batch_size=2, device="cpu"))
    assert rep.batch_size == 1 and rep.skipped_steps == 0
    # the lost partial epoch's first step is not counted: one full epoch at batch 1
    assert rep.steps == rep.history[-1]["step"] == _steps_per_epoch(exp, 1) == 4
    assert rep.final_losses and all(torch.isfinite(torch.tensor(v)) for v in rep.final_losses.values())


def test_scaler_warm_up_is_not_counted_as_skipped_steps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The GradScaler starts high on purpose and lowers its scale on overflow: its normal warm-up, not
    # the non-finite losses the model card reports as skipped steps.
    from infer.modules.train.data import collate
    from infer.modules.train.loop import _Trainer

    exp = tiny_experiment(tmp_path / "exp", n=2, seconds=1.0)
    _scaled(monkeypatch, torch.float16)
    tr = _Trainer(tiny_settings(exp, device="cpu"), 0, 1, 0, None)
    tr.setup_data()
    tr.setup_models()
    tr.scaler = torch.amp.GradScaler("cpu", init_scale=2.0**40)  # overflows fp16 at once
    assert tr.train_step(collate([tr.train_ds[0]])) is None
    assert tr.scaler.get_scale() == 2.0**39  # lowered
    assert (tr.skipped, tr.scaler_overflows) == (0, 1)


# ------------------------------------------------------------------------------------- batch size


def _auto_batch_rank(rank: int, port: int, free_gib: list[float], out: Any) -> None:
    import torch.distributed as dist

    from infer.lib.config import load_config
    from infer.lib.device import Precision
    from infer.modules.train.batch_size import choose_batch_size

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=2)
    try:
        with emulated_cuda(n_devices=2, free_bytes=[int(g * GiB) for g in free_gib]):
            dev = torch.device("cuda", rank)
            bs = choose_batch_size(
                load_config("v2", "40k"), "auto", dev, Precision(dev, torch.bfloat16, False), 1000, 2
            )
        out.put((rank, bs))
    finally:
        dist.destroy_process_group()


def test_auto_batch_is_the_minimum_across_two_gloo_ranks() -> None:
    # Rank 0 also holds the parent's models: 21.0 vs 22.5 GiB free once gave 13 vs 14 per rank,
    # 22 vs 20 steps an epoch, and the longer rank hung in a collective until the NCCL timeout.
    import torch.multiprocessing as mp

    from infer.lib.config import load_config
    from infer.lib.device import Precision
    from infer.modules.train.batch_size import auto_batch_size

    free = [21.0, 22.5]
    cfg = load_config("v2", "40k")
    with emulated_cuda(n_devices=2, free_bytes=[int(g * GiB) for g in free]):
        own = [
            auto_batch_size(
                cfg, torch.device("cuda", r), Precision(torch.device("cuda", r), torch.bfloat16, False), 1000, 2
            )
            for r in (0, 1)
        ]
    assert own == [13, 14]  # the ranks' own free memory leads them to different batch sizes
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        port = sk.getsockname()[1]
    mp.start_processes(_auto_batch_rank, args=(port, free, q), nprocs=2, start_method="spawn")
    got = dict(q.get(timeout=60) for _ in range(2))
    assert got == {0: own[0], 1: own[0]}


def test_auto_batch_constants_live_in_one_place() -> None:
    from bench.gpu_fixtures import tiny_config
    from infer.lib.device import Precision
    from infer.modules.train.batch_size import AUTO_BATCH, auto_batch_size

    cfg = tiny_config()
    dev = torch.device("cuda", 0)
    with emulated_cuda(free_bytes=[24 * GiB]):
        bs = auto_batch_size(cfg, dev, Precision(dev, torch.bfloat16, False), 1000, 1)
    per_item = AUTO_BATCH.per_item_bytes(cfg, half=True)
    assert bs == min(AUTO_BATCH.max_batch, int((24 * GiB * AUTO_BATCH.usable - AUTO_BATCH.fixed_bytes) // per_item))


# ------------------------------------------------------------------------------------- memory release


def test_stages_release_gpu_memory_and_training_runs_with_shared_models_off_gpu(
    tmp_path: Path, tiny_modules: TinyModules, monkeypatch: pytest.MonkeyPatch
) -> None:
    import infer.lib.device as device_mod
    import infer.modules.train.train as train_mod

    shared = device_mod.track_gpu_model(torch.nn.Linear(2, 2))  # as HuBERT kept by the Predictor
    moves: list[str] = []
    monkeypatch.setattr(device_mod, "_param_device", lambda m: torch.device("cuda", 0) if m is shared else None)

    def move(d: Any) -> Any:
        moves.append(str(d))
        return shared

    monkeypatch.setattr(shared, "to", move)
    seen: dict[str, Any] = {}

    class _Rep:
        def to_dict(self) -> dict[str, Any]:
            return {}

    def fake_train(settings: Any, cancel: Any = None, log_file: Any = None) -> Any:
        seen["moves"] = list(moves)
        return _Rep()

    monkeypatch.setattr(train_mod, "train", fake_train)
    tm = tiny_modules(tmp_path / "exp", device="cuda")
    with emulated_cuda() as fake:
        tm._stage("train", tm.train)
        assert seen["moves"] == ["cpu"]  # off the GPU while training ran
        assert moves == ["cpu", "cuda:0"]  # and back for the next job
        before = fake.empty_cache_calls
        tm._stage("index", lambda: {})  # (a stage of the numbered list)
        assert fake.empty_cache_calls > before  # every stage ends by releasing cached blocks


# ------------------------------------------------------------------------------------- loaders, DDP start


def test_batches_pin_their_tensors(monkeypatch: pytest.MonkeyPatch) -> None:
    # DataLoader(pin_memory=True) calls `.pin_memory()` on the batch; without it nothing was pinned.
    from torch.utils.data._utils.pin_memory import pin_memory

    from infer.modules.train.data import Sample, collate

    pinned: list[tuple[int, ...]] = []

    def fake_pin(self: torch.Tensor, *a: Any, **k: Any) -> torch.Tensor:
        pinned.append(tuple(self.shape))
        return self

    monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    s = Sample(torch.rand(5, 7), torch.rand(1, 70), torch.rand(7, 4), torch.ones(7, dtype=torch.long), torch.rand(7), 0)
    b = pin_memory(collate([s, s]))
    assert type(b).__name__ == "Batch" and len(pinned) == 9  # every tensor of the batch


def test_each_ddp_job_uses_the_free_port_it_was_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import signal
    import threading

    import infer.lib.jobguard as jobguard
    import infer.modules.train.launch as launch_mod

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    monkeypatch.setenv("MASTER_PORT", str(busy.getsockname()[1]))  # left by an earlier job or the caller
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    got: dict[str, str] = {}
    monkeypatch.setattr(launch_mod, "run_worker", lambda *a, **k: got.update(port=os.environ["MASTER_PORT"]))
    monkeypatch.setattr(jobguard, "die_with_parent", lambda *a, **k: True)  # not on the test process
    exp = tiny_experiment(tmp_path / "exp", n=2)
    port = launch_mod._free_port()
    threads, handler = torch.get_num_threads(), signal.getsignal(signal.SIGTERM)
    try:
        launch_mod._worker(0, 2, tiny_settings(exp, device="cpu"), threading.Event(), port, None, None)
    finally:
        torch.set_num_threads(threads)
        signal.signal(signal.SIGTERM, handler)
        busy.close()
    assert got["port"] == str(port)


def test_process_group_starts_after_set_device_with_device_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.distributed as dist

    import infer.modules.train.launch as launch_mod

    exp = tiny_experiment(tmp_path / "exp", n=2)
    seen: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_init(*a: Any, **k: Any) -> None:
        seen.update(k, set_before=list(fake.set_device_calls))
        raise Stop

    monkeypatch.setattr(dist, "init_process_group", fake_init)
    with emulated_cuda(n_devices=2) as fake, pytest.raises(Stop):
        launch_mod.run_worker(1, 2, 1, tiny_settings(exp, device="cuda"))
    assert seen["backend"] == "nccl" and seen["set_before"] == [1]
    assert seen["device_id"] == torch.device("cuda", 1)
