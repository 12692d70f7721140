"""Voice conversion speed: 8 s of speech, v2/40k with pitch (rmvpe), index 0.75, full-size networks.

    python -m bench.bench_convert [--runs 3] [--seconds 8] [--method rmvpe] [--device cpu]
    python -m bench.bench_convert --reference /tmp/rvcref --runs 3     # A/B against the reference code

Converts `--seconds` of `../shared/data/joe_1min/joe_000.wav` (resampled to 16 kHz) with a full-size
v2/40k pitch model (stand-in values: the published layout, deterministic weights; speed does not
depend on the values), the stand-in HuBERT base and RMVPE, and a FAISS IVF index of 8000 random
768-dim vectors, at the default settings (index_rate 0.75, protect 0.33, rms_mix_rate 0.25,
filter_radius 3). Each run is a fresh process that loads everything, converts once to warm up and
times one `VC.convert_detailed` call (the feature memo off). Prints wall and CPU seconds (user +
system) per run.

`--reference DIR`: the reference RVC 20240604 tree (`git archive 20240604 infer`); its
`Pipeline.pipeline` runs as its `vc_single` calls it (fp32 CPU windows x_pad 1, x_query 6,
x_center 38, x_max 41), with its own `SynthesizerTrnMs768NSFsid` loaded from the same model file and
its own RMVPE from the same `rmvpe.pt`, its processes alternating with ours (same input, same
settings, same load; separate processes, so our process-wide malloc setting does not help it). HuBERT is ours on both sides (the reference only needs fairseq's
`extract_features`; fairseq is not installed here), so the HuBERT share is equal by construction.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import SHARED, bench_cache_dir

REPO = Path(__file__).resolve().parents[1]
SR16 = 16000
# The reference's Pipeline.pipeline on this input at these settings, alternating with ours in one run
# (bench/README.md, `cpu-2026-12-01-convert-ab-quiet.json`, medians of 3 on the quiet 2-core machine).
REFERENCE_S = {"wall_s": 7.90, "cpu_s": 15.50}


def source_audio(seconds: float) -> np.ndarray:
    from infer.lib.audio import load_audio

    x = load_audio(SHARED / "data" / "joe_1min" / "joe_000.wav", SR16)
    need = int(seconds * SR16)
    if len(x) < need:
        raise SystemExit(f"joe_000.wav has only {len(x) / SR16:.1f} s")
    return np.ascontiguousarray(x[:need])


def build_inputs(root: Path) -> dict[str, Path]:
    """Full-size stand-ins under `root` (written once): HuBERT base, RMVPE, a v2/40k f0 model, an index."""
    from infer.lib.checkpoint import export_small_model
    from infer.lib.config import load_config
    from tools.standin_writers import write_standin_hubert, write_standin_pretrained, write_standin_rmvpe

    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "hubert": root / "hubert_base.pt",
        "rmvpe": root / "rmvpe.pt",
        "model": root / "bench_v2_40k.pth",
        "index": root / "added_IVF205_Flat_nprobe_1_bench_v2.index",
    }
    if not paths["hubert"].is_file():
        write_standin_hubert(paths["hubert"], size="base")
    if not paths["rmvpe"].is_file():
        write_standin_rmvpe(paths["rmvpe"])
    if not paths["model"].is_file():
        g = write_standin_pretrained(root / "f0G40k.pth", "v2", "40k", True, "G")
        sd = torch.load(g, map_location="cpu", weights_only=True)["model"]
        export_small_model(sd, load_config("v2", "40k"), True, "bench", 1, 1, paths["model"])
    if not paths["index"].is_file():
        import faiss

        vectors = np.random.default_rng(0).standard_normal((8000, 768)).astype(np.float32)
        index = faiss.index_factory(768, "IVF205,Flat")
        index.train(vectors)
        index.add(vectors)
        faiss.write_index(index, str(paths["index"]))
    return paths


def timed(fn: Any) -> tuple[float, float, float, float]:
    """(wall s, CPU s, user s, system s) of fn()."""
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    fn()
    wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    user, sys_ = r1.ru_utime - r0.ru_utime, r1.ru_stime - r0.ru_stime
    return wall, user + sys_, user, sys_


class Modules:
    """Swap between two sets of `infer*` modules in `sys.modules` (ours and the reference's)."""

    def __init__(self) -> None:
        self.ours = self._take()

    @staticmethod
    def _take() -> dict[str, Any]:
        names = [m for m in sys.modules if m == "infer" or m.startswith("infer.")]
        return {m: sys.modules.pop(m) for m in names}

    @contextlib.contextmanager
    def use(self, mods: dict[str, Any]) -> Iterator[None]:
        saved = self._take()
        sys.modules.update(mods)
        try:
            yield
        finally:
            mods.update(self._take())
            sys.modules.update(saved)


def reference_converter(reference: Path, paths: dict[str, Path], hubert: Any, params: dict[str, Any]) -> Any:
    """A function converting 16 kHz audio with the reference's pipeline (its own modules)."""
    import librosa.core.audio  # noqa: F401  (its lazy loader inspects the stack: import it while ours are in)
    import librosa.feature  # noqa: F401

    from tests.make_vc_reference_fixture import HubertStandIn

    swap = Modules()  # our modules leave sys.modules; the reference's are imported fresh
    saved_path = list(sys.path)
    # ours is a regular package: on sys.path it would win over the reference's namespace package
    sys.path[:] = [str(reference), *(p for p in sys.path if Path(p or ".").resolve() != REPO)]
    cwd = os.getcwd()
    os.chdir(reference)
    os.environ["rmvpe_root"] = str(paths["rmvpe"].parent)
    try:
        models = importlib.import_module("infer.lib.infer_pack.models")
        rpipe = importlib.import_module("infer.modules.vc.pipeline")
        importlib.import_module("infer.lib.rmvpe")
        assert Path(sys.modules["infer"].__file__ or "").resolve().is_relative_to(reference.resolve())
        cpt = torch.load(paths["model"], map_location="cpu", weights_only=True)
        config = list(cpt["config"])
        config[-3] = cpt["weight"]["emb_g.weight"].shape[0]
        net_g = models.SynthesizerTrnMs768NSFsid(*config, is_half=False)
        del net_g.enc_q
        net_g.load_state_dict(cpt["weight"], strict=False)
        net_g = net_g.eval().float()

        class Config:
            x_pad, x_query, x_center, x_max, is_half, device = 1, 6, 38, 41, False, "cpu"

        pipe = rpipe.Pipeline(config[-1], Config())
    finally:
        refmods = swap._take()
        sys.modules.update(swap.ours)
        sys.path[:] = saved_path
        os.chdir(cwd)

    def convert(audio16k: np.ndarray) -> np.ndarray:
        with swap.use(refmods):
            x = audio16k.copy()
            peak = np.abs(x).max() / 0.95
            if peak > 1:
                x /= peak
            return pipe.pipeline(
                HubertStandIn(hubert),
                net_g,
                0,
                x,
                "bench",
                [0, 0, 0],
                params["f0_up_key"],
                params["f0_method"],
                str(paths["index"]),
                params["index_rate"],
                1,
                params["filter_radius"],
                config[-1],
                0,
                params["rms_mix_rate"],
                "v2",
                params["protect"],
            )

    return convert


def measure(side: str, a: argparse.Namespace) -> list[float]:
    """In this process: load `side`, convert once to warm up, then time one conversion."""
    from infer.modules.vc import VC
    from infer.modules.vc.pipeline import ConvertParams

    root = a.work or bench_cache_dir() / "bench-convert"
    paths = build_inputs(root)
    audio = source_audio(a.seconds)
    params = ConvertParams(f0_method=a.method)
    vc = VC(device=a.device, hubert_path=paths["hubert"], rmvpe_path=paths["rmvpe"], memo_windows=0)
    model, index = vc.load_model(paths["model"]), vc.load_index(paths["index"])
    if side == "ours":

        def fn() -> None:
            vc.convert_detailed(audio, SR16, model, index, params)
    else:
        ref = reference_converter(a.reference.resolve(), paths, vc.hubert(), params.to_dict())

        def fn() -> None:
            ref(audio)

    fn()  # warm-up: first-call allocations, lazy imports
    wall, cpu, user, system = timed(fn)
    return [round(wall, 2), round(cpu, 2), round(user, 2), round(system, 2)]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--seconds", type=float, default=8.0)
    p.add_argument("--method", default="rmvpe")
    p.add_argument("--device", default="cpu")
    p.add_argument("--reference", type=Path, default=None, help="reference RVC 20240604 tree: alternate A/B")
    p.add_argument("--work", type=Path, default=None, help="where the stand-ins are written (kept)")
    p.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    p.add_argument("--side", choices=("ours", "reference"), default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)

    from infer.lib.log import setup_logging

    setup_logging()
    if a.side:  # worker: one side, one process
        print("RESULT " + json.dumps(measure(a.side, a)), flush=True)
        return 0
    sides = ["ours", *(["reference"] if a.reference is not None else [])]
    results: dict[str, list[list[float]]] = {k: [] for k in sides}
    passthrough = ["--seconds", str(a.seconds), "--method", a.method, "--device", a.device]
    passthrough += ["--reference", str(a.reference)] if a.reference else []
    passthrough += ["--work", str(a.work)] if a.work else []
    for i in range(a.runs):
        for side in sides:  # each run in a fresh process: process-wide settings (malloc) stay per side
            proc = subprocess.run(
                [sys.executable, "-m", "bench.bench_convert", "--side", side, *passthrough],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=False,
            )
            line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
            if proc.returncode != 0 or line is None:
                print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
                return 1
            row = json.loads(line[len("RESULT ") :])
            results[side].append(row)
            print(f"run {i + 1} {side:9s}: {row[0]:6.2f} s wall, {row[1]:6.2f} CPU s ({row[2]} user, {row[3]} system)")
    load = os.getloadavg()
    summary: dict[str, Any] = {
        "what": f"convert {a.seconds:g} s of joe_000.wav, v2/40k f0 {a.method}, index 0.75, full-size stand-ins, "
        f"{a.device}, torch {torch.__version__} {torch.get_num_threads()} threads, one process per run (warm-up "
        "then one timed conversion), sides alternating; [wall, CPU, user, system] s",
        "loadavg_after": [round(x, 2) for x in load],
        **results,
    }
    for name, rows in results.items():
        med = float(np.median([r[0] for r in rows]))
        print(f"{name}: median {med:.2f} s wall, {float(np.median([r[1] for r in rows])):.2f} CPU s")
    if "reference" in results:
        ratio = np.median([r[0] for r in results["reference"]]) / np.median([r[0] for r in results["ours"]])
        cpu_ratio = np.median([r[1] for r in results["reference"]]) / np.median([r[1] for r in results["ours"]])
        summary["speedup_wall"], summary["speedup_cpu"] = round(float(ratio), 2), round(float(cpu_ratio), 2)
        print(f"ours vs reference: {ratio:.2f}x wall, {cpu_ratio:.2f}x CPU (load average {load[0]:.1f})")
    elif REFERENCE_S["wall_s"]:
        print(f"reference (recorded A/B): {REFERENCE_S['wall_s']} s wall, {REFERENCE_S['cpu_s']} CPU s")
    if a.out:
        a.out.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
