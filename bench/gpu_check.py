"""The GPU device check: every GPU-only branch of the product, run for real on one CUDA GPU.

    python -m bench.gpu_check                  # writes bench/results/gpu-<date>.json and prints a table
    python -m bench.gpu_check --quick          # fewer batch sizes, 40k only (a few minutes less)
    python -m bench.gpu_check --out FILE.json
    python -m bench.gpu_check --audio DIR      # speech for the Predictor jobs (default ../shared/data/joe_1min)

From a fresh checkout, with stand-in weights written into a temporary folder and no network, in
under 10 minutes on one GPU. Two parts:

- the CPU-emulated part (always; `tests/test_gpu_check.py` runs it in the default suite): CUDA faked
  as present (bench/cuda_emulation.py): the trainer's device selection for None / "cuda" / "cuda:0",
  precision on capability 7.0 / 7.5 / 8.0 / 9.0, segment length, OOM classification, auto batch of
  two ranks, and the real tiny trainer's GradScaler out-of-memory retry under CPU autocast;
- the GPU part (only where `torch.cuda.is_available()`): torch/CUDA/capability facts; the trainer's
  start with device None (it picks cuda:0 and sets it current); the tiny trainer on cuda:0 in bf16 (where native)
  and in forced fp16 + GradScaler, finite losses; the out-of-memory retry in both modes; full-size
  v2/40k and v2/48k training steps at batch 1, 2, 4, 8 with peak memory and the `AUTO_BATCH`
  constants they imply; a real out-of-memory under a capped memory fraction (the job survives);
  HuBERT, RMVPE and conversion in fp16 against fp32; `Predictor.setup()` then two tiny jobs back to
  back (same auto batch both times, reserved memory back to its baseline). The jobs' data check needs
  30 s of real speech: `--audio DIR` ($RVC_SHARED_DIR/data/joe_1min or ../shared/data/joe_1min by
  default); without it that check is reported as not run.

Without a GPU it says so and exits 0 after the CPU part. With one, it exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import sys
import tempfile
import time
import traceback
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

GiB = 1 << 30
RESULTS_DIR = Path(__file__).resolve().parent / "results"
HUBERT_FP16_MAX_REL_ERR = 1e-2


@dataclasses.dataclass
class Row:
    """One check: `ok` (None = not applicable), figures, and the error text when it raised."""

    part: str
    check: str
    ok: bool | None = None
    figures: dict[str, Any] = dataclasses.field(default_factory=dict)
    error: str | None = None
    seconds: float = 0.0


def _run(rows: list[Row], part: str, check: str, fn: Callable[[], tuple[bool | None, dict[str, Any]]]) -> Row:
    row = Row(part, check)
    t0 = time.monotonic()
    try:
        row.ok, row.figures = fn()
    except Exception as e:  # noqa: BLE001 - one failed check must not hide the others
        row.ok = False
        row.error = f"{type(e).__name__}: {e}"
        traceback.print_exc()
    row.seconds = round(time.monotonic() - t0, 2)
    rows.append(row)
    print(f"[{part}] {check}: {'ok' if row.ok else ('n/a' if row.ok is None else 'FAILED')} {row.figures or ''}"
          f"{' ' + row.error if row.error else ''}", flush=True)  # fmt: skip
    return row


@contextlib.contextmanager
def _oom_after_unscale(at_call: int, exc: BaseException) -> Iterator[None]:
    """Raise `exc` at the `at_call`-th gradient-norm check of the trainer (right after a
    `scaler.unscale_()`: calls 1, 2 are step 1's discriminator and generator, 3 step 2's discriminator)."""
    import infer.modules.train.step as step_mod

    real = step_mod._finite_grad_norm
    calls = [0]

    def norm(params: list[Any]) -> float:
        calls[0] += 1
        if calls[0] == at_call:
            raise exc
        return real(params)

    step_mod._finite_grad_norm = norm
    try:
        yield
    finally:
        step_mod._finite_grad_norm = real


@contextlib.contextmanager
def _forced_precision(dtype: Any, scaler: bool) -> Iterator[None]:
    import infer.modules.train.loop as loop_mod
    from infer.lib.device import Precision

    real = loop_mod.training_precision
    loop_mod.training_precision = lambda dev, *a, **k: Precision(dev, dtype, scaler)
    try:
        yield
    finally:
        loop_mod.training_precision = real


# --------------------------------------------------------------------------------------------------
# The CPU-emulated part
# --------------------------------------------------------------------------------------------------


def cpu_part(work: Path) -> list[Row]:
    """Device decisions with CUDA emulated, and the real tiny trainer's GradScaler OOM retry on the CPU."""
    import torch

    from bench.cuda_emulation import emulated_cuda
    from bench.gpu_fixtures import tiny_experiment, tiny_settings
    from infer.lib.config import load_config
    from infer.lib.device import Precision, is_out_of_memory, preprocess_segment_seconds, training_precision
    from infer.modules.train.batch_size import auto_batch_size
    from infer.modules.train.loop import _Trainer

    rows: list[Row] = []
    exp = tiny_experiment(work / "emulated", n=2, seconds=1.0)

    def trainer_start() -> tuple[bool, dict[str, Any]]:
        got = {}
        for req in (None, "cuda", "cuda:0"):
            with emulated_cuda(n_devices=2, capability=(8, 0)) as fake:
                tr = _Trainer(tiny_settings(exp, device=req), 0, 1, 0, None)
            got[str(req)] = {"device": str(tr.device), "set_device": fake.set_device_calls}
        return all(v == {"device": "cuda:0", "set_device": [0]} for v in got.values()), got

    def precision() -> tuple[bool, dict[str, Any]]:
        want = {"7.0": "fp16", "7.5": "fp16", "8.0": "bf16", "9.0": "bf16"}
        got = {}
        for cap in want:
            major, minor = (int(x) for x in cap.split("."))
            with emulated_cuda(capability=(major, minor), name="emulated"):
                got[cap] = training_precision(torch.device("cuda", 0)).name
        return got == want, got

    def segments() -> tuple[bool, dict[str, Any]]:
        got = {}
        for name, cap, total in (("Tesla T4", (7, 5), 15), ("Tesla P40", (6, 1), 24), ("GTX 1650", (7, 5), 4)):
            with emulated_cuda(capability=cap, name=name, total_bytes=total * GiB):
                got[name] = preprocess_segment_seconds(torch.device("cuda", 0))
        return got == {"Tesla T4": 3.7, "Tesla P40": 3.0, "GTX 1650": 3.0}, got

    def oom_texts() -> tuple[bool, dict[str, Any]]:
        texts = ["CUDNN_STATUS_ALLOC_FAILED", "CUBLAS_STATUS_ALLOC_FAILED", "CUDA error: out of memory"]
        got = {t: is_out_of_memory(RuntimeError(t)) for t in texts}
        got["same device error"] = is_out_of_memory(RuntimeError("Expected all tensors to be on the same device"))
        return all(got[t] for t in texts) and not got["same device error"], got

    def auto_batch() -> tuple[bool, dict[str, Any]]:
        cfg = load_config("v2", "40k")
        free = [21.0, 22.5]
        with emulated_cuda(n_devices=2, free_bytes=[int(g * GiB) for g in free]):
            own = [
                auto_batch_size(cfg, torch.device("cuda", r), Precision(torch.device("cuda", r), None, False), 1000, 2)
                for r in (0, 1)
            ]
        # the ranks agree on min(own) through `choose_batch_size` (all_reduce MIN; tested with 2 gloo ranks)
        return own[0] <= own[1], {"free_gib": free, "per_rank_fp32": own, "agreed": min(own)}

    def scaler_oom_retry() -> tuple[bool, dict[str, Any]]:
        # a cuDNN allocation failure (a RuntimeError, not torch.OutOfMemoryError) after the first unscale_()
        from infer.modules.train.train import train

        e = tiny_experiment(work / "retry", n=2, seconds=1.0)
        oom = RuntimeError("cuDNN error: CUDNN_STATUS_ALLOC_FAILED")
        with _forced_precision(torch.bfloat16, True), _oom_after_unscale(1, oom):
            rep = train(tiny_settings(e, device="cpu", batch_size=2))
        finite = all(math.isfinite(v) for v in rep.final_losses.values())
        return rep.batch_size == 1 and rep.steps == 2 and finite, {"batch": rep.batch_size, "steps": rep.steps}

    _run(rows, "emulated", "trainer start with device None/cuda/cuda:0", trainer_start)
    _run(rows, "emulated", "precision by capability", precision)
    _run(rows, "emulated", "preprocess segment seconds", segments)
    _run(rows, "emulated", "OOM classification", oom_texts)
    _run(rows, "emulated", "auto batch of 2 ranks (v2/40k fp32)", auto_batch)
    _run(rows, "cpu", "GradScaler cuDNN-OOM retry (bf16 autocast)", scaler_oom_retry)
    return rows


# --------------------------------------------------------------------------------------------------
# The GPU part
# --------------------------------------------------------------------------------------------------


def _speechlike(seconds: float, sr: int, seed: int = 0) -> np.ndarray:
    """A voiced signal with vibrato, syllable-like amplitude and a little noise, float32 [T]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    f0 = 150 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 12))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 3.0 * t) ** 2
    return (0.3 * x * env / 3 + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def _synthetic_batch(cfg: Any, bs: int, frames: int, device: Any) -> Any:
    import torch

    from infer.modules.train.data import Batch

    g = torch.Generator().manual_seed(bs)
    hop = cfg.data.hop_length
    lengths = torch.full((bs,), frames, dtype=torch.long)
    b = Batch(
        phone=torch.randn(bs, frames, cfg.content_dim, generator=g),
        phone_lengths=lengths,
        pitch=torch.randint(1, 255, (bs, frames), generator=g),
        pitchf=200 + 50 * torch.rand(bs, frames, generator=g),
        spec=torch.rand(bs, cfg.data.spec_channels, frames, generator=g),
        spec_lengths=lengths.clone(),
        wave=0.1 * torch.randn(bs, 1, frames * hop, generator=g),
        wave_lengths=lengths * hop,
        sid=torch.zeros(bs, dtype=torch.long),
    )
    return b.to(device)


def default_audio_dir() -> Path | None:
    """The sample voice the demo uses: $RVC_SHARED_DIR/data/joe_1min or ../shared/data/joe_1min."""
    repo = Path(__file__).resolve().parents[1]
    d = Path(os.environ.get("RVC_SHARED_DIR", repo.parent / "shared")) / "data" / "joe_1min"
    return d if d.is_dir() else None


def gpu_part(work: Path, quick: bool, audio_dir: Path | None = None) -> tuple[list[Row], dict[str, Any]]:
    import torch

    from bench.gpu_fixtures import tiny_experiment, tiny_settings
    from infer.lib import device as devlib
    from infer.modules.train.batch_size import AUTO_BATCH
    from infer.modules.train.loop import _Trainer
    from infer.modules.train.train import train

    rows: list[Row] = []
    dev = torch.device("cuda", 0)
    props = torch.cuda.get_device_properties(dev)
    facts: dict[str, Any] = {
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "gpu": torch.cuda.get_device_name(dev),
        "capability": list(torch.cuda.get_device_capability(dev)),
        "total_gib": round(props.total_memory / GiB, 2),
        "gpus": torch.cuda.device_count(),
        "native_bf16": devlib.native_bf16(dev),
        "fp32_only": devlib.fp32_only(dev),
        "auto_precision": devlib.training_precision(dev).name,
        "segment_s": devlib.preprocess_segment_seconds(dev),
        "is_bf16_supported(including_emulation=True)": torch.cuda.is_bf16_supported(),
    }
    print("GPU:", json.dumps(facts), flush=True)
    exp = tiny_experiment(work / "tiny", n=8, seconds=1.5)
    tiny_models: dict[str, str] = {}

    def trainer_start() -> tuple[bool, dict[str, Any]]:
        tr = _Trainer(tiny_settings(exp, device=None), 0, 1, 0, None)
        ok = tr.device == dev and torch.cuda.current_device() == 0
        return ok, {"device": str(tr.device), "precision": tr.precision.name}

    def tiny_train(mode: str, oom: bool) -> Callable[[], tuple[bool | None, dict[str, Any]]]:
        def run() -> tuple[bool | None, dict[str, Any]]:
            if mode == "bf16" and not devlib.native_bf16(dev):
                return None, {"skipped": "no native bf16 on this GPU"}
            e = tiny_experiment(work / f"tiny-{mode}-{'oom' if oom else 'ok'}", n=8, seconds=1.5)
            # 3 epochs of 2 steps: fp16's first steps may all be GradScaler overflows
            settings = tiny_settings(e, device="cuda:0", precision=mode, epochs=3, batch_size=4)
            ctx = _oom_after_unscale(3, torch.OutOfMemoryError("injected")) if oom else contextlib.nullcontext()
            t0 = time.monotonic()
            with ctx:
                rep = train(settings)
            secs = time.monotonic() - t0
            losses = [v for h in rep.history for k, v in h.items() if k.startswith("loss_")]
            finite = bool(losses) and all(math.isfinite(v) for v in losses)
            if not oom:
                tiny_models[mode] = rep.model_path
            figs = {
                "precision": rep.precision,
                "batch": rep.batch_size,
                "steps": rep.steps,
                "skipped": rep.skipped_steps,
                "scaler_overflows": sum(h.get("scaler_overflows", 0) for h in rep.history),
                "steps_per_s": round(rep.steps / secs, 2),
                "loss_mel": [h.get("loss_mel") for h in rep.history],
            }
            ok = finite and rep.precision == mode and (rep.batch_size == 2 if oom else rep.batch_size == 4)
            return ok, figs

        return run

    fit: dict[str, Any] = {}

    def full_size_steps(sr: str, batches: Sequence[int], fp32_batches: Sequence[int]) -> Callable[[], Any]:
        def run() -> tuple[bool, dict[str, Any]]:
            from infer.lib.config import load_config

            cfg = load_config("v2", sr)
            root = work / f"full-{sr}"
            from infer.lib.layout import ExperimentLayout

            e = ExperimentLayout(root, "v2")
            e.make_dirs()
            e.config_path.write_text(json.dumps(cfg.to_dict()))
            frames = int(3.7 * cfg.data.sampling_rate) // cfg.data.hop_length
            out: dict[str, Any] = {}
            for mode, bss in (("auto", batches), ("fp32", fp32_batches)):
                s = tiny_settings(e, sample_rate=sr, device="cuda:0", precision=mode, discriminator_periods=None)
                tr = _Trainer(s, 0, 1, 0, None)
                tr.setup_models()
                peaks = []
                for bs in bss:
                    b = _synthetic_batch(cfg, bs, frames, dev)
                    devlib.release_memory()
                    torch.cuda.reset_peak_memory_stats(dev)
                    tr.train_step(b)  # warm-up (cuDNN autotune, allocator)
                    torch.cuda.synchronize(dev)
                    t0 = time.monotonic()
                    for _ in range(2):
                        tr.train_step(b)
                    torch.cuda.synchronize(dev)
                    step_s = (time.monotonic() - t0) / 2
                    peak = torch.cuda.max_memory_allocated(dev) / GiB
                    peaks.append(peak)
                    out[f"{tr.precision.name} b{bs}"] = {
                        "step_s": round(step_s, 3),
                        "peak_gib": round(peak, 2),
                        "reserved_gib": round(torch.cuda.max_memory_reserved(dev) / GiB, 2),
                    }
                    del b
                if len(bss) >= 2:
                    slope, intercept = np.polyfit(np.array(bss, float), np.array(peaks), 1)
                    out[f"{tr.precision.name} fit"] = {
                        "gib_per_segment": round(float(slope), 3),
                        "fixed_gib": round(float(intercept), 2),
                    }
                    fit[f"{sr} {tr.precision.name}"] = (float(slope), float(intercept))
                del tr
                devlib.release_memory()
            return True, out

        return run

    def capped_oom() -> tuple[bool, dict[str, Any]]:
        from infer.lib.config import load_config

        cfg = load_config("v2", "40k")
        key = next((k for k in fit if k.startswith("40k") and not k.endswith("fp32")), None)
        slope, intercept = fit[key] if key is not None else (AUTO_BATCH.per_item_gib_half, AUTO_BATCH.fixed_gib)
        cap_gib = (intercept + 2.5 * slope) * 1.1
        frac = min(0.9, cap_gib * GiB / props.total_memory)
        root = work / "capped"
        e = tiny_experiment(root, n=16, seconds=3.7)
        e.config_path.write_text(json.dumps(cfg.to_dict()))
        devlib.release_memory()
        torch.cuda.set_per_process_memory_fraction(frac, dev)
        try:
            rep = train(tiny_settings(e, device="cuda:0", batch_size=16, discriminator_periods=None))
        finally:
            torch.cuda.set_per_process_memory_fraction(1.0, dev)
            devlib.release_memory()
        finite = all(math.isfinite(v) for v in rep.final_losses.values())
        return finite and rep.batch_size < 16, {
            "cap_gib": round(cap_gib, 2),
            "batch": rep.batch_size,
            "steps": rep.steps,
        }

    def half_vs_full() -> tuple[bool, dict[str, Any]]:
        from infer.lib.hubert import load_hubert
        from infer.lib.rmvpe import load_rmvpe
        from tools.standin_writers import write_standin_hubert, write_standin_rmvpe

        hp = write_standin_hubert(work / "w" / "hubert" / "hubert_base.pt", "base")
        rp = write_standin_rmvpe(work / "w" / "rmvpe" / "rmvpe.pt")
        audio = _speechlike(5.0, 16000)
        first = sorted(audio_dir.glob("*.wav")) if audio_dir else []
        if first:
            from infer.lib.audio import load_audio

            audio = load_audio(first[0], 16000)[: 5 * 16000].astype(np.float32)
        wav = torch.from_numpy(audio)[None]
        feats = {}
        for half in (False, True):
            m = load_hubert(hp, dev, half=half)
            with torch.inference_mode():
                feats[half] = m.extract(wav, version="v2").float().cpu()
            del m
        rel_h = float((feats[True] - feats[False]).norm() / feats[False].norm())
        sal = {}
        for half in (False, True):
            r = load_rmvpe(rp, dev, half=half)
            sal[half] = r.salience(r.log_mel(audio)).float().cpu()
            del r
        rel_r = float((sal[True] - sal[False]).norm() / sal[False].norm())
        figs: dict[str, Any] = {"hubert_rel_err": round(rel_h, 5), "rmvpe_salience_rel_err": round(rel_r, 5)}
        model = tiny_models.get("fp16") or tiny_models.get("bf16")
        if model:
            from infer.modules.vc import VC

            outs = {}
            for half in (False, True):
                vc = VC(device=dev, half=half, hubert_path=hp, rmvpe_path=rp)
                y, _sr = vc.convert(audio, 16000, model, None, f0_method="pm", seed=0)
                outs[half] = y
            n = min(len(outs[True]), len(outs[False]))
            diff = outs[True][:n] - outs[False][:n]
            figs["conversion_rel_err"] = round(
                float(np.linalg.norm(diff) / max(1e-9, float(np.linalg.norm(outs[False][:n])))), 5
            )
        devlib.release_memory()
        return rel_h < HUBERT_FP16_MAX_REL_ERR, figs

    def predictor_two_jobs() -> tuple[bool | None, dict[str, Any]]:
        from infer.lib.audio import AUDIO_EXTENSIONS
        from tools.make_standin_weights import main as make_standins

        speech = sorted(p for p in (audio_dir.glob("*") if audio_dir else []) if p.suffix.lower() in AUDIO_EXTENSIONS)
        if not speech:
            return None, {"skipped": "no speech for the jobs' data check: pass --audio DIR (30 s or more of one voice)"}
        wd = work / "weights"
        assert make_standins(["--out", str(wd), "--version", "v2", "--sample-rate", "40k", "--f0"]) == 0
        data = work / "dataset.zip"
        with zipfile.ZipFile(data, "w") as z:
            for p in speech:
                z.write(p, p.name)
        env = {
            "RVC_WEIGHTS_DIR": str(wd),
            "RVC_OFFLINE": "1",
            "RVC_TEST_TINY_MODEL": "1",
            "RVC_JOBS_DIR": str(work / "jobs"),
        }
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            from infer.modules.train.job import Workspace, run_job
            from predict import Predictor, request_from_inputs

            p = Predictor()
            p.setup()
            torch.cuda.synchronize(dev)
            base = torch.cuda.memory_reserved(dev)
            jobs = []
            for i in range(2):
                options, inputs = request_from_inputs(
                    dataset=str(data), sample_rate="40k", f0method="rmvpe_gpu", epoch=1, batch_size="auto",
                    enhance_audio=False, experiment_name=f"job{i}", seed=1,
                )  # fmt: skip
                out = run_job(options, inputs, Workspace.create(), shared_models=p.shared).zip_path  # as predict()
                if out is None:
                    raise RuntimeError("run_job returned no model zip")
                with zipfile.ZipFile(out) as z:
                    card = json.loads(z.read("model_card.json"))
                torch.cuda.synchronize(dev)
                jobs.append(
                    {"batch": card["training"]["batch_size"], "reserved_gib": torch.cuda.memory_reserved(dev) / GiB}
                )
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        base_gib = base / GiB
        same_batch = jobs[0]["batch"] == jobs[1]["batch"]
        back = all(j["reserved_gib"] <= base_gib + 0.25 for j in jobs)
        figs = {
            "baseline_reserved_gib": round(base_gib, 3),
            "jobs": [{k: round(v, 3) for k, v in j.items()} for j in jobs],
        }
        return same_batch and back, figs

    _run(rows, "gpu", "trainer start, device None", trainer_start)
    _run(rows, "gpu", "tiny trainer bf16", tiny_train("bf16", oom=False))
    _run(rows, "gpu", "tiny trainer fp16 + GradScaler", tiny_train("fp16", oom=False))
    _run(rows, "gpu", "OOM retry bf16", tiny_train("bf16", oom=True))
    _run(rows, "gpu", "OOM retry fp16 + GradScaler", tiny_train("fp16", oom=True))
    batches = (1, 2) if quick else (1, 2, 4, 8)
    fp32_batches = (1, 2) if quick else (1, 2, 4)
    for sr in ("40k",) if quick else ("40k", "48k"):
        _run(rows, "gpu", f"full-size v2/{sr} steps", full_size_steps(sr, batches, fp32_batches if sr == "40k" else ()))
    _run(rows, "gpu", "real OOM under a capped memory fraction", capped_oom)
    _run(rows, "gpu", "HuBERT / RMVPE / conversion fp16 vs fp32", half_vs_full)
    _run(rows, "gpu", "Predictor.setup() + two jobs", predictor_two_jobs)
    suggested = {}
    for key, (slope, intercept) in fit.items():
        if key.startswith("40k") and not key.endswith("fp32"):
            suggested = {"per_item_gib_half": round(slope, 3), "fixed_gib": round(intercept, 2)}
    if "40k fp32" in fit and suggested:
        suggested["fp32_factor"] = round(fit["40k fp32"][0] / max(1e-9, suggested["per_item_gib_half"]), 2)
    facts["auto_batch_suggested"] = suggested
    facts["auto_batch_current"] = dataclasses.asdict(AUTO_BATCH)
    return rows, facts


# --------------------------------------------------------------------------------------------------
# Entry
# --------------------------------------------------------------------------------------------------


def table(rows: Sequence[Row]) -> str:
    lines = ["| part | check | result | s | figures |", "|---|---|---|---|---|"]
    for r in rows:
        res = "ok" if r.ok else ("n/a" if r.ok is None else "FAILED")
        figs = json.dumps(r.figures, default=str) if r.figures else ""
        if r.error:
            figs = (figs + " " + r.error).strip()
        lines.append(f"| {r.part} | {r.check} | {res} | {r.seconds:.1f} | {figs} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/gpu-<date>.json)")
    p.add_argument("--quick", action="store_true", help="batch 1, 2 and 40k only for the full-size steps")
    p.add_argument("--audio", type=Path, default=None, help="speech for the Predictor jobs (default joe_1min)")
    p.add_argument("--cpu-only", action="store_true", help="only the CPU-emulated part (what the default suite runs)")
    args = p.parse_args(argv)
    import torch

    from infer.lib.log import setup_logging

    setup_logging()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        work = Path(tmp)
        rows = cpu_part(work / "cpu")
        facts: dict[str, Any] = {}
        has_gpu = torch.cuda.is_available()
        if has_gpu and not args.cpu_only:
            gpu_rows, facts = gpu_part(work / "gpu", args.quick, args.audio or default_audio_dir())
            rows += gpu_rows
        elif not has_gpu:
            print("no CUDA GPU on this machine: only the CPU-emulated part ran; the GPU part is UNMEASURED here")
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "gpu_part": has_gpu and not args.cpu_only,
        "facts": facts,
        "rows": [dataclasses.asdict(r) for r in rows],
    }
    if has_gpu and not args.cpu_only:
        out = args.out or RESULTS_DIR / f"gpu-{datetime.now(UTC).date().isoformat()}.json"
    else:
        out = args.out
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        print(f"wrote {out}")
    print(table(rows))
    if facts.get("auto_batch_suggested"):
        print("AUTO_BATCH from these peaks:", json.dumps(facts["auto_batch_suggested"]))
    failed = [r for r in rows if r.ok is False]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
