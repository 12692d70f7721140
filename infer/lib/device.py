"""Device and precision choices, GPU memory release, and out-of-memory classification, in one place.

- `pick_device`: a CUDA device always carries its index (`torch.cuda.set_device` and DDP need one).
- `training_precision`: bf16 autocast only where the GPU has it natively (compute capability >= 8.0;
  `torch.cuda.is_bf16_supported()` also says True where bf16 is only emulated, T4/V100), fp16 with a
  GradScaler on other tensor-core GPUs, fp32 on the CPU and on fp32-only GPUs (before Volta, GTX 16xx).
- `preprocess_segment_seconds`: the reference's 3.7 s segments, 3.0 s on fp32-only GPUs and cards of
  4 GB or less (the reference's `use_fp32_config` / `gpu_mem <= 4`).
- `release_memory` / `track_gpu_model` / `models_off_gpu`: the long-lived Cog worker frees cached GPU
  blocks between stages and jobs, and moves the models it keeps (HuBERT, MossFormer2) to the CPU while
  training runs, so `batch_size=auto` sees the same free memory on every job.
- `is_out_of_memory`: CUDA allocation failures, including cuDNN/cuBLAS ones that arrive as RuntimeError.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import torch

GiB = 1 << 30
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "fp16", "bf16")
NATIVE_BF16_CAPABILITY = (8, 0)  # Ampere and newer
TENSOR_CORE_CAPABILITY = (7, 0)  # Volta and newer: fast fp16
SEGMENT_S = 3.7  # the reference's `preprocess_per` (infer/modules/train/preprocess.py has the same figures)
SEGMENT_S_SHORT = 3.0  # the reference's on fp32-only devices and cards of <= 4 GB
SMALL_GPU_GB = 4
# Texts of allocation failures that reach Python as a plain RuntimeError (cuDNN, cuBLAS, the CUDA runtime).
OOM_TEXTS: tuple[str, ...] = ("CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "out of memory")


@dataclass(frozen=True)
class Precision:
    """How a stage runs on a device: autocast dtype (None for fp32) and whether a GradScaler is needed."""

    device: torch.device
    autocast_dtype: torch.dtype | None
    use_grad_scaler: bool

    @property
    def name(self) -> str:
        return {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.autocast_dtype]


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1") or the best available device.

    A CUDA device always has an index: the current device (`torch.cuda.current_device()`, 0 unless
    changed) when none is given. An index past the visible GPUs is refused.
    """
    from infer.lib.errors import UserInputError

    dev = torch.device(requested) if requested else None
    if dev is not None and dev.type != "cuda":
        return dev
    if not torch.cuda.is_available():
        if dev is not None:
            raise UserInputError(f"device {requested!r} was asked for but no CUDA GPU is available; use 'cpu'")
        return torch.device("cpu")
    index = torch.cuda.current_device() if dev is None or dev.index is None else dev.index
    n = torch.cuda.device_count()
    if index >= n:
        raise UserInputError(f"device {requested!r}: this machine has {n} GPU(s), cuda:0..cuda:{n - 1}")
    return torch.device("cuda", index)


def capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) compute capability of a CUDA device."""
    major, minor = torch.cuda.get_device_capability(device)
    return int(major), int(minor)


def native_bf16(device: torch.device) -> bool:
    """True on GPUs with bf16 in hardware (capability >= 8.0); False where it is only emulated."""
    return device.type == "cuda" and capability(device) >= NATIVE_BF16_CAPABILITY


def fp32_only(device: torch.device) -> bool:
    """A GPU without fast fp16: before Volta (capability < 7.0; P40, GTX 10xx) or a GTX 16xx (Turing
    without tensor cores), the GPUs the reference forces to fp32."""
    if device.type != "cuda":
        return False
    return capability(device) < TENSOR_CORE_CAPABILITY or "GTX 16" in torch.cuda.get_device_name(device).upper()


def training_precision(device: torch.device, mode: str = "auto") -> Precision:
    """The precision of training on `device`; `mode` one of PRECISIONS.

    auto: bf16 autocast on GPUs with native bf16, fp16 + GradScaler on other tensor-core GPUs, fp32 on
    fp32-only GPUs and the CPU. fp16 may be forced anywhere (CPU autocast runs it too: tests); bf16
    is refused on a GPU that only emulates it.
    """
    from infer.lib.errors import UserInputError

    if mode not in PRECISIONS:
        raise UserInputError(f"precision must be one of {list(PRECISIONS)}, got {mode!r}")
    fp32 = Precision(device, None, False)
    bf16 = Precision(device, torch.bfloat16, False)
    fp16 = Precision(device, torch.float16, True)
    if mode == "fp32":
        return fp32
    if mode == "fp16":
        return fp16
    if mode == "bf16":
        if device.type == "cuda" and not native_bf16(device):
            major, minor = capability(device)
            raise UserInputError(
                f"precision bf16 needs a GPU with native bf16 (compute capability 8.0 or newer); {device} has "
                f"{major}.{minor}: use 'auto', 'fp16' or 'fp32'"
            )
        return bf16
    if device.type != "cuda" or fp32_only(device):
        return fp32
    return bf16 if native_bf16(device) else fp16


def preprocess_segment_seconds(device: torch.device) -> float:
    """Segment length of the preprocessing stage for a job on `device` (seconds)."""
    if device.type != "cuda":
        return SEGMENT_S
    _free, total = torch.cuda.mem_get_info(device)
    small = int(total / GiB + 0.4) <= SMALL_GPU_GB
    return SEGMENT_S_SHORT if small or fp32_only(device) else SEGMENT_S


def enable_tf32() -> None:
    """Allow TF32 matmuls and convolutions (Ampere and newer); harmless elsewhere."""
    if torch.cuda.is_available():
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


# ------------------------------------------------------------------------------------- out of memory


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU allocation failure: `torch.OutOfMemoryError`, or a RuntimeError from cuDNN, cuBLAS
    or the CUDA runtime saying so (CUDNN_STATUS_ALLOC_FAILED, CUBLAS_STATUS_ALLOC_FAILED, out of memory)."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    if not isinstance(exc, RuntimeError):
        return False
    text = str(exc).lower()
    return any(t.lower() in text for t in OOM_TEXTS)


# ------------------------------------------------------------------------------------- memory release

_gpu_models: weakref.WeakSet[torch.nn.Module] = weakref.WeakSet()


def release_memory() -> None:
    """Collect garbage and return the CUDA caching allocator's free blocks to the driver."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _param_device(model: torch.nn.Module) -> torch.device | None:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return None


def track_gpu_model(model: torch.nn.Module) -> torch.nn.Module:
    """Remember `model` (weakly) as one kept on a GPU between jobs; `models_off_gpu` moves it aside."""
    _gpu_models.add(model)
    return model


@contextlib.contextmanager
def models_off_gpu() -> Iterator[int]:
    """While inside, the tracked models that sit on a GPU are on the CPU and the freed memory is
    released; on leaving they go back to their device. Yields how many were moved."""
    moved: list[tuple[torch.nn.Module, torch.device]] = []
    for m in list(_gpu_models):
        dev = _param_device(m)
        if dev is not None and dev.type == "cuda":
            m.to("cpu")
            moved.append((m, dev))
    release_memory()
    try:
        yield len(moved)
    finally:
        for m, dev in moved:
            m.to(dev)
