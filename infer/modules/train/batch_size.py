"""The batch size per training process: the requested one, or for `batch_size="auto"` one from free GPU
memory (`AUTO_BATCH`), the same on every DDP rank (the minimum over the ranks)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist

from infer.lib.config import RVCConfig
from infer.lib.device import GiB, Precision


@dataclass(frozen=True)
class AutoBatch:
    """The memory model of `batch_size="auto"` (all its constants).

    GPU memory of one training process = `fixed_bytes` (G, D, optimizer states, workspace) + batch x
    `per_item_bytes` (activations of one segment, proportional to the slice length). Only `usable` of
    the free memory is planned for. The figures are NOT measured yet and err high (bench/README.md);
    `python -m bench.gpu_check` measures peak memory at batch 1/2/4/8 to set them. An out-of-memory
    still halves the batch and retries.
    """

    per_item_gib_half: float = 1.2  # at `ref_segment_size` samples
    ref_segment_size: int = 12800  # the 40k slice
    fp32_factor: float = 1.6
    fixed_gib: float = 2.5
    usable: float = 0.9
    cpu_batch: int = 4
    max_batch: int = 32

    @property
    def fixed_bytes(self) -> float:
        return self.fixed_gib * GiB

    def per_item_bytes(self, cfg: RVCConfig, half: bool) -> float:
        scale = cfg.train.segment_size / self.ref_segment_size
        return self.per_item_gib_half * GiB * scale * (1.0 if half else self.fp32_factor)


AUTO_BATCH = AutoBatch()


def auto_batch_size(cfg: RVCConfig, device: torch.device, precision: Precision, n_segments: int, world: int) -> int:
    """This process's batch size from its free GPU memory (`AUTO_BATCH`; 4 on CPU), at most 32 and at
    most the segments per process."""
    a = AUTO_BATCH
    if device.type != "cuda":
        bs = a.cpu_batch
    else:
        free, _total = torch.cuda.mem_get_info(device)
        per_item = a.per_item_bytes(cfg, half=precision.autocast_dtype is not None)
        bs = int((free * a.usable - a.fixed_bytes) // per_item)
    return max(1, min(bs, a.max_batch, max(1, n_segments // max(1, world))))


def choose_batch_size(
    cfg: RVCConfig, requested: int | str, device: torch.device, precision: Precision, n_segments: int, world: int
) -> int:
    """The batch size per process: `requested`, or for "auto" the smallest `auto_batch_size` over the
    ranks of the process group (ranks see different free memory: rank 0 also holds the parent's models,
    and ranks with different batches take different numbers of steps, then block in a collective)."""
    if requested != "auto":
        return int(requested)
    bs = auto_batch_size(cfg, device, precision, n_segments, world)
    if world > 1 and dist.is_initialized():
        on = device if dist.get_backend() == "nccl" else torch.device("cpu")
        t = torch.tensor([bs], dtype=torch.long, device=on)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        bs = int(t.item())
    return bs
