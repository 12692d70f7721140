"""One stage of `bench.run`, in its own process: `python -m bench.stages SPEC.json`.

SPEC.json (written by `bench.run.run_stage`): {"stage", "files", "exp_root", "weights", "quick",
"batch", "device", "train_steps", "result"}. The stage runs on the experiment folder `exp_root` (the
stages before it have filled it) and writes its figures as JSON to `result`: `wall_s` (the stage call
alone, imports excluded), the stage's own counts, and the kernel's `ru_maxrss` peaks.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any, get_args

from bench.common import Stopwatch, rusage_peaks, serve_directory
from infer.lib.options import F0Method

EXPERIMENT = "bench"


def _f0_method(name: str) -> F0Method:
    """`name` as a pitch method of the options (the part of an `f0-<method>` stage after `f0-`)."""
    for method in get_args(F0Method):
        if method == name:
            return method
    raise SystemExit(f"unknown pitch method {name!r}; known: {', '.join(get_args(F0Method))}")


def _modules(spec: dict[str, Any], f0method: F0Method = "rmvpe") -> Any:
    """A `TrainModules` on the benchmark's experiment folder (cache off, weights given, no preview)."""
    from infer.lib.cache import ArrayCache
    from infer.modules.train.pipeline import TrainModules, TrainOptions

    opts = TrainOptions(
        experiment_name=EXPERIMENT,
        version="v2",
        sample_rate="40k",
        use_f0=True,
        f0method=f0method,
        epochs=1,
        batch_size=spec["batch"],
        save_every_epoch=1,
        enhance_audio=False,
        from_scratch=True,
        preview=False,
        device=spec.get("device"),
        seed=1234,
    )
    cfg = None
    if spec["quick"]:
        cfg = tiny_config()
    tm = TrainModules(
        opts,
        spec["exp_root"],
        weight_paths={k: Path(v) for k, v in spec["weights"].items()},
        config=cfg,
        cache=ArrayCache(None),
    )
    tm.fetch_weights()
    return tm


def tiny_config() -> Any:
    """v2/40k with a network small enough for the `--quick` smoke run (sizes as the tests' tiny config)."""
    from infer.lib.config import load_config, tiny_network

    return tiny_network(load_config("v2", "40k"))


def _stage_download(spec: dict[str, Any]) -> dict[str, Any]:
    from infer.lib.wav_downloader import WavDownloader

    files = [Path(f) for f in spec["files"]]
    out = Path(spec["exp_root"]) / "downloads"
    shutil.rmtree(out, ignore_errors=True)
    with serve_directory(files[0].parent) as base:
        urls = [f"{base}/{f.name}" for f in files]
        with Stopwatch() as sw:
            got = WavDownloader().download(urls, out)
    return {"wall_s": sw.seconds, "files": len(got), "mib": round(sum(g.path.stat().st_size for g in got) / 2**20, 1)}


def _stage_enhance(spec: dict[str, Any]) -> dict[str, Any]:
    from infer.lib.audio import load_audio
    from infer.lib.enhance import AudioEnhancer
    from infer.lib.weights import MOSSFORMER2

    device = spec.get("device") or _auto_device()
    with Stopwatch() as sw:
        enh = AudioEnhancer(Path(spec["weights"][MOSSFORMER2]), device)
        load = time.monotonic() - sw.t0
        for f in spec["files"]:
            enh.enhance(load_audio(f, 48000), 48000)
    return {"wall_s": sw.seconds, "load_s": round(load, 2), "device": device, "standin": enh.is_standin}


def _auto_device() -> str:
    from infer.lib.device import pick_device

    return str(pick_device(None))


def _stage_preprocess(spec: dict[str, Any]) -> dict[str, Any]:
    tm = _modules(spec)
    with Stopwatch() as sw:
        rep = tm.preprocess([Path(f) for f in spec["files"]])
    d = rep.to_dict()
    return {"wall_s": sw.seconds, "segments": d["segments_kept"], "trimmed": d["trimmed"]}


def _stage_f0(spec: dict[str, Any], method: str) -> dict[str, Any]:
    if method == "crepe-tiny":
        from infer.lib.cache import ArrayCache
        from infer.lib.layout import ExperimentLayout
        from infer.modules.train.extract_f0 import extract_f0

        exp = ExperimentLayout(Path(spec["exp_root"]), "v2")
        with Stopwatch() as sw:
            rep = extract_f0(
                exp, "crepe", ArrayCache(None), device=spec.get("device") or _auto_device(), crepe_model="tiny"
            )
    else:
        tm = _modules(spec, f0method=_f0_method(method))
        with Stopwatch() as sw:
            rep = tm.f0()
    return {"wall_s": sw.seconds, "files": rep.n_files, "workers": getattr(rep, "n_workers", None)}


def _stage_features(spec: dict[str, Any]) -> dict[str, Any]:
    tm = _modules(spec)
    with Stopwatch() as sw:
        rep = tm.features()
    return {
        "wall_s": sw.seconds,
        "files": rep.n_files,
        "load_s": round(rep.load_seconds, 2),
        "dtype": rep.dtype,
        "forward_passes": rep.n_forward_passes,
    }


def _clear_training(exp: Any) -> None:
    from infer.modules.train.state import state_path
    from infer.modules.train.train import REPORT_FILE

    for p in [*exp.checkpoint_dir.glob("G_*.pth"), *exp.checkpoint_dir.glob("D_*.pth")]:
        p.unlink(missing_ok=True)  # the checkpoint folder is the experiment root (reference layout)
    shutil.rmtree(exp.tensorboard_dir, ignore_errors=True)
    state_path(exp).unlink(missing_ok=True)
    (exp.reports_dir / REPORT_FILE).unlink(missing_ok=True)


def _stage_train(spec: dict[str, Any]) -> dict[str, Any]:
    import torch

    tm = _modules(spec)
    tm.filelist()
    _clear_training(tm.exp)
    n_steps = spec.get("train_steps")
    if not n_steps:
        with Stopwatch() as sw:
            rep = tm.train()
        epoch_s = rep.history[0]["seconds"]
        return {
            "wall_s": sw.seconds,
            "steps": rep.steps,
            "batch": rep.batch_size,
            "precision": rep.precision,
            "device": rep.device,
            "startup_s": round(sw.seconds - epoch_s, 2),
            "step_s": round(epoch_s / max(1, rep.steps), 3),
            "step_s_incl_startup": round(sw.seconds / max(1, rep.steps), 3),
            "threads": torch.get_num_threads(),
        }
    return _train_steps(tm, int(n_steps), spec)


def _train_steps(tm: Any, n_steps: int, spec: dict[str, Any]) -> dict[str, Any]:
    """`n_steps` steps of the real trainer (same set-up as the stage), the epoch extrapolated.

    Also exports the small model and a train report so that the zip stage can run afterwards.
    """
    import torch

    from infer.lib.fileio import atomic_write_text
    from infer.modules.train.loop import _Trainer
    from infer.modules.train.train import REPORT_FILE, TrainSettings

    s = TrainSettings(
        exp_root=str(tm.exp.root),
        version=tm.o.version,
        sample_rate=tm.o.sample_rate,
        use_f0=True,
        name=EXPERIMENT,
        epochs=1,
        batch_size=spec["batch"],
        from_scratch=True,
        device=tm.o.device,
        world_size=1,
    )
    t0 = time.monotonic()
    tr = _Trainer(s, 0, 1, 0, threading.Event())
    tr.setup_data()
    tr.setup_models()
    sampler, loader = tr.make_loader(spec["batch"], 1)
    startup = time.monotonic() - t0
    tr.net_g.train()
    tr.net_d.train()
    times = []
    for i, batch in enumerate(loader):
        if i >= n_steps:
            break
        t = time.monotonic()
        tr.train_step(batch.to(tr.device))
        if tr.device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.monotonic() - t)
        tr.step += 1
    per_epoch = len(sampler)
    later = statistics.median(times[1:]) if len(times) > 1 else times[0]
    epoch_est = startup + times[0] + later * (per_epoch - 1)
    model = tr.export(tm.exp.root / f"{EXPERIMENT}.pth", 1)
    atomic_write_text(
        tm.exp.reports_dir / REPORT_FILE,
        json.dumps({"model_path": str(model), "history": [], "bench_partial_steps": len(times)}),
    )
    return {
        "wall_s": epoch_est,
        "extrapolated": True,
        "measured_steps": len(times),
        "steps": per_epoch,
        "batch": spec["batch"],
        "precision": tr.precision.name,
        "device": str(tr.device),
        "startup_s": round(startup, 2),
        "first_step_s": round(times[0], 3),
        "step_s": round(later, 3),
        "step_s_incl_startup": round(epoch_est / per_epoch, 3),
        "measured_wall_s": round(time.monotonic() - t0, 2),
        "threads": torch.get_num_threads(),
    }


def _stage_index(spec: dict[str, Any]) -> dict[str, Any]:
    tm = _modules(spec)
    with Stopwatch() as sw:
        rep = tm.index()
    return {"wall_s": sw.seconds, "vectors": rep.n_indexed_vectors, "n_ivf": rep.n_ivf}


def _stage_zip(spec: dict[str, Any]) -> dict[str, Any]:
    tm = _modules(spec)
    found = sorted(tm.exp.root.glob("added_IVF*_Flat_nprobe_1_*.index"))
    tm._index_path = found[-1] if found else None
    out = tm.exp.root / f"{EXPERIMENT}.zip"
    with Stopwatch() as sw:
        path = tm.package(out, [Path(f).name for f in spec["files"]])
    return {"wall_s": sw.seconds, "zip_mib": round(path.stat().st_size / 2**20, 1), "index": bool(found)}


def _stage_convert(spec: dict[str, Any]) -> dict[str, Any]:
    from bench import bench_convert

    args = argparse.Namespace(seconds=8.0, method="rmvpe", device="cpu", reference=None, work=None)
    wall, cpu, _, _ = bench_convert.measure("ours", args)
    return {"wall_s": wall, "audio_s": args.seconds, "timed_cpu_s": cpu}


def worker_main(spec_path: str) -> None:
    """Run one stage as described by the JSON file; write {"wall_s", ...rusage} next to it."""
    t_proc = time.monotonic()
    spec = json.loads(Path(spec_path).read_text())
    from infer.lib.log import setup_logging

    setup_logging()
    stage = spec["stage"]
    if stage.startswith("f0-"):
        res = _stage_f0(spec, stage[3:])
    else:
        res = globals()[f"_stage_{stage}"](spec)
    res.update(rusage_peaks())
    res["stage_proc_s"] = round(time.monotonic() - t_proc, 2)
    Path(spec["result"]).write_text(json.dumps(res, default=str))


if __name__ == "__main__":
    worker_main(sys.argv[1])
