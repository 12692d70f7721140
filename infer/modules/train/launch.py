"""Starting the training processes: this process alone (one device, or one rank under `torchrun`), or
`world` DDP workers spawned with torch.multiprocessing (NCCL on CUDA, gloo on CPU).

A spawned worker that stops on a project error (`CancelledError`, `UserInputError`) sends the
exception itself to the parent through a queue, and the parent raises it as it is: the caller sees
the same error type and message as from a run in one process.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
from collections.abc import Iterator
from multiprocessing.queues import SimpleQueue
from typing import Any

import torch
import torch.distributed as dist

from infer.lib.device import pick_device, release_memory
from infer.lib.errors import CancelledError, RVCError
from infer.lib.log import get_logger
from infer.modules.train.loop import _Trainer, worker_device
from infer.modules.train.train import REPORT_FILE, TrainReport, TrainSettings

_log = get_logger("train")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def run_worker(
    rank: int, world: int, local_rank: int, settings: TrainSettings, cancel: Any = None
) -> TrainReport | None:
    """One training process; rank 0's `TrainReport`, None on the other ranks. With `world` > 1 it joins
    the process group (env:// rendezvous), on a GPU after `set_device` and bound to it (`device_id`).
    GPU memory is released when it ends."""
    dev = worker_device(settings.device, world, local_rank)
    if world > 1:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
            dist.init_process_group(backend="nccl", init_method="env://", world_size=world, rank=rank, device_id=dev)
        else:
            dist.init_process_group(backend="gloo", init_method="env://", world_size=world, rank=rank)
    try:
        return _Trainer(settings, rank, world, local_rank, cancel).run()
    finally:
        if world > 1 and dist.is_initialized():
            dist.destroy_process_group()
        release_memory()


@contextlib.contextmanager
def sigterm_sets(event: Any) -> Iterator[None]:
    """While inside, SIGTERM sets `event` (main thread only; elsewhere nothing is installed)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)

    def handler(signum: int, frame: Any) -> None:
        event.set()
        if callable(old) and getattr(old, "_rvc_chain", False):  # the job's handler (infer.lib.jobguard) too
            old(signum, frame)

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _read_report(settings: TrainSettings) -> TrainReport:
    return TrainReport.from_dict(json.loads((settings.exp.reports_dir / REPORT_FILE).read_text()))


def run_here(
    settings: TrainSettings, rank: int, world: int, local_rank: int, cancel: threading.Event | None
) -> TrainReport:
    """Train as this process (rank `rank` of `world`; SIGTERM cancels); rank 0's report (on the other
    ranks read from the report file rank 0 wrote)."""
    ev = cancel or threading.Event()
    with sigterm_sets(ev):
        rep = run_worker(rank, world, local_rank, settings, ev)
    return rep if rep is not None else _read_report(settings)


def _worker(
    local_rank: int,
    world: int,
    settings: TrainSettings,
    cancel: Any,
    port: int,
    log_file: str | None,
    errors: SimpleQueue[RVCError] | None,
) -> None:
    """Entry of a spawned DDP process (rank = local_rank on this machine). The rendezvous is the
    address and the free `port` this job picked (not one left in the environment by another job).
    A project error is also put on `errors` for the parent."""
    from infer.lib.jobguard import die_with_parent
    from infer.lib.log import setup_logging

    die_with_parent()  # a SIGKILLed job leaves no orphaned worker training on: SIGTERM saves and stops
    setup_logging(log_file=log_file)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: cancel.set())
    if pick_device(settings.device).type == "cpu":
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    try:
        run_worker(local_rank, world, local_rank, settings, cancel)
    except RVCError as e:
        if errors is not None:
            errors.put(e)
        raise


def _relay(cancel: threading.Event | None, to: Any, stop: threading.Event) -> threading.Thread:
    """A daemon thread that sets `to` (a multiprocessing Event) once `cancel` is set, until `stop` is."""

    def relay() -> None:
        while not stop.wait(0.5):
            if cancel is not None and cancel.is_set():
                to.set()
                return

    watcher = threading.Thread(target=relay, daemon=True)
    watcher.start()
    return watcher


def _worker_error(errors: SimpleQueue[RVCError]) -> RVCError | None:
    """The project error a worker sent, if any (one that cannot be read back counts as none)."""
    try:
        return None if errors.empty() else errors.get()
    except Exception:  # noqa: BLE001 - an error that does not unpickle: the workers' own traceback stands
        return None


def spawn_workers(
    settings: TrainSettings, world: int, cancel: threading.Event | None, log_file: str | None
) -> TrainReport:
    """Train with `world` spawned DDP processes on this machine; rank 0's report. Setting `cancel` or
    SIGTERM stops them at the next step (checkpoint saved, `CancelledError`); a worker's
    `UserInputError` or `CancelledError` is raised here as it is."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    mp_cancel = ctx.Event()
    errors: SimpleQueue[RVCError] = ctx.SimpleQueue()
    stop = threading.Event()
    _relay(cancel, mp_cancel, stop)
    report_file = settings.exp.reports_dir / REPORT_FILE
    report_file.unlink(missing_ok=True)
    backend = "nccl" if pick_device(settings.device).type == "cuda" else "gloo"
    _log.info("starting %d DDP processes (%s)", world, backend)
    try:
        with sigterm_sets(mp_cancel):
            procs = mp.start_processes(
                _worker,
                args=(world, settings, mp_cancel, _free_port(), log_file, errors),
                nprocs=world,
                join=False,
                start_method="spawn",
            )
            while not procs.join(timeout=1.0):
                pass
    except mp.ProcessRaisedException:
        err = _worker_error(errors)
        if err is not None:
            raise err from None
        raise
    finally:
        stop.set()
    if mp_cancel.is_set() and not report_file.is_file():
        raise CancelledError("training cancelled; checkpoint saved")
    return _read_report(settings)
