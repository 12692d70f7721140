"""`make bench`: wall time, real-time factor and peak memory of every pipeline stage, in one table.

    .venv/bin/python -m bench.run                                   # joe_1min and joe_10min, every stage
    .venv/bin/python -m bench.run --data joe_1min --stages preprocess,f0,features,index
    .venv/bin/python -m bench.run --data joe_10min --train-steps 3  # N steps, epoch extrapolated
    .venv/bin/python -m bench.run --skip enhance,f0-crepe --out bench/results/cpu-mine.json
    .venv/bin/python -m bench.run --quick --data DIR               # smoke run: tiny network, few stages

Every stage runs in its own Python process (`bench.stages`, like the reference scripts it is
compared with), on the same experiment folder, in pipeline order; the parent samples the resident memory of that process
and all its workers every 50 ms (peak RSS of the process tree) and reads the kernel's `ru_maxrss`
high-water marks the stage process reports. `wall s` is the stage call itself (imports and
interpreter start excluded; `proc_s` in the JSON includes them). `CPU s` is the user + system time of
the stage process and its workers (`os.wait4`, imports included): on a shared machine it moves much
less than wall time. RTF = wall / seconds of input audio.

Stages: download (WavDownloader from a 127.0.0.1 HTTP server serving the data folder, ffmpeg
conversion included), enhance (full-size stand-in MossFormer2 on every file at 48 kHz; slow on CPU:
`--skip enhance`), preprocess (slicing, 40k + 16k segments, silence trim as the product runs it),
f0-<method> for pm, dio, harvest, fcpe, crepe-tiny, crepe (full), rmvpe (+ rmvpe_gpu on CUDA), features
(HuBERT v2), train (v2/40k with pitch, from scratch like the reference figure, default batch 4,
fp32 on CPU, the device's AMP precision on CUDA; one epoch, or `--train-steps N` steps and the epoch
extrapolated: start-up + steps/epoch x median step, labelled "extrapolated"), index (FAISS IVF), zip
(the model zip, no preview clip), convert (8 s of speech through `VC`, v2/40k rmvpe, index 0.75, full-size
stand-ins: `bench.bench_convert`, whose `--reference` mode is the A/B against the reference pipeline). The
extraction cache is off. Weights are full-size stand-ins written
once under `$RVC_CACHE_DIR/bench-weights` (speed does not depend on the values); `--weights DIR` uses a
folder in the published layout instead.

Reference figures (`../shared/reference/bench-cpu.md`, the reference RVC scripts on this machine) are
printed next to ours with the speed-up (reference wall / ours). Summary rows: "non-training" =
preprocess + f0-rmvpe + features + index (the goal: >= 2x the reference), and "end to end, 1 epoch" =
download + preprocess + f0-rmvpe + features + train + index + zip.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import bench_f0, bench_features
from bench.common import (
    GiB,
    PeakSampler,
    audio_files,
    audio_seconds,
    bench_cache_dir,
    data_dir,
    device_info,
    markdown_table,
)

REPO = Path(__file__).resolve().parents[1]
F0_STAGES = ("f0-pm", "f0-dio", "f0-harvest", "f0-fcpe", "f0-crepe-tiny", "f0-crepe", "f0-rmvpe", "f0-rmvpe_gpu")
STAGES = ("download", "enhance", "preprocess", *F0_STAGES, "features", "train", "index", "zip", "convert")
QUICK_STAGES = ("download", "preprocess", "f0-pm", "features", "train", "index", "zip")
NON_TRAINING = ("preprocess", "f0-rmvpe", "features", "index")
END_TO_END = ("download", "preprocess", "f0-rmvpe", "features", "train", "index", "zip")
DEFAULT_BATCH = 4

# ../shared/reference/bench-cpu.md (reference RVC scripts, 2-core EPYC, torch 2 threads, n_p=2).
# Wall seconds per data set; the f0 and HuBERT figures are the ones B1/B2's benches already carry.
REFERENCE_S: dict[str, dict[str, float]] = {
    "preprocess": {"joe_1min": 3.0, "joe_10min": 5.7},
    **{
        f"f0-{m}": {s: bench_f0.REFERENCE_S[s][m] for s in bench_f0.REFERENCE_S}
        for m in ("pm", "harvest", "dio", "rmvpe")
    },
    "features": dict(bench_features.REFERENCE_S),
    "index": {"joe_1min": 0.3, "joe_10min": 3.5},
    "train": {"joe_1min": 133.0},
    # 8 s of joe_000.wav, v2/40k rmvpe, index 0.75: the reference 20240604 pipeline, median of the
    # alternating A/B runs in bench/results/cpu-2026-12-01-convert-ab.json (load ~6.4; 21.8 CPU s)
    "convert": {"joe_1min": 38.5, "joe_10min": 38.5},
}
REFERENCE_RSS_GB = {
    "preprocess": 0.7,
    "f0-pm": 0.4,
    "f0-harvest": 0.4,
    "f0-dio": 0.4,
    "f0-rmvpe": 2.5,
    "features": 1.9,
    "index": 0.2,
    "train": 8.8,
}
REFERENCE_STEP_S = 133.0 / 8  # batch 4, fp32, v2/40k, start-up included


# --------------------------------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------------------------------


def weights_for(stages: list[str], weights_dir: Path | None) -> dict[str, str]:
    """{weight name: path} for every name the stages may ask for; the files the chosen stages read are
    written as full-size stand-ins once (unless `weights_dir` is given)."""
    from infer.lib.weights import HUBERT, MOSSFORMER2, RMVPE

    needed = {HUBERT: "features" in stages, RMVPE: any(s.startswith("f0-rmvpe") for s in stages)}
    needed[MOSSFORMER2] = "enhance" in stages
    if weights_dir is not None:
        return {n: str(weights_dir / n) for n in needed}
    root = bench_cache_dir() / "bench-weights"
    missing = [n for n, need in needed.items() if need and not (root / n).exists()]
    if missing:
        from tools.make_standin_weights import write_standins

        print(f"writing stand-in weights {missing} under {root} (once)", file=sys.stderr, flush=True)
        write_standins(root, missing)
    return {n: str(root / n) for n in needed}


def run_stage(spec: dict[str, Any], log_path: Path) -> dict[str, Any]:
    """One stage in a fresh process; returns its result with the sampled tree peak and process wall."""
    spec_path = log_path.with_suffix(".spec.json")
    spec["result"] = str(log_path.with_suffix(".result.json"))
    Path(spec["result"]).unlink(missing_ok=True)
    spec_path.write_text(json.dumps(spec))
    t0 = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.stages", str(spec_path)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with PeakSampler(proc.pid) as sampler:
            _, status, usage = os.wait4(proc.pid, 0)  # the child's CPU time, its reaped workers' included
            rc = proc.returncode = os.waitstatus_to_exitcode(status)
    proc_s = time.monotonic() - t0
    if rc != 0 or not Path(spec["result"]).is_file():
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-15:])
        return {"error": f"exit code {rc}", "log_tail": tail, "proc_s": round(proc_s, 2)}
    res = json.loads(Path(spec["result"]).read_text())
    res["proc_s"] = round(proc_s, 2)
    res["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)
    res["peak_rss_gb"] = round(sampler.peak / GiB, 3)
    return res


def select_stages(args: argparse.Namespace, cuda: bool) -> list[str]:
    known = list(STAGES)
    if args.stages:
        want: list[str] = []
        for s in args.stages.split(","):
            s = s.strip()
            if s == "f0":
                want += [x for x in F0_STAGES if x != "f0-rmvpe_gpu" or cuda]
            elif s == "all":
                want += known
            elif s in known:
                want.append(s)
            else:
                raise SystemExit(f"unknown stage {s!r}; known: f0, all, {', '.join(known)}")
    else:
        want = list(QUICK_STAGES if args.quick else STAGES)
    skip = {s.strip() for s in (args.skip or "").split(",") if s.strip()}
    if not cuda:
        skip.add("f0-rmvpe_gpu")
    return [s for s in known if s in want and s not in skip]


def row_for(set_name: str, stage: str, res: dict[str, Any], audio_s: float, repeats: list[float]) -> dict[str, Any]:
    audio_s = float(res.get("audio_s", audio_s))  # convert: its own 8 s input
    row: dict[str, Any] = {"set": set_name, "stage": stage, **res, "audio_s": round(audio_s, 1)}
    if "error" in res:
        return row
    wall = float(res["wall_s"])
    if len(repeats) > 1:
        row["runs_wall_s"] = [round(x, 2) for x in repeats]
        wall = statistics.median(repeats)
    row["wall_s"] = round(wall, 3)
    row["rtf"] = round(wall / audio_s, 5) if audio_s else None
    ref = REFERENCE_S.get(stage, {}).get(set_name)
    row["reference_s"] = ref
    row["speedup"] = round(ref / wall, 2) if ref else None
    row["reference_rss_gb"] = REFERENCE_RSS_GB.get(stage)
    return row


def note_for(row: dict[str, Any]) -> str:
    if "error" in row:
        return f"FAILED ({row['error']})"
    s = row["stage"]
    bits = []
    if s == "train":
        bits.append(
            f"{row['steps']} steps x batch {row['batch']} {row['precision']}, {row['step_s']} s/step, "
            f"{row['step_s_incl_startup']} s/step incl. start-up (ref {REFERENCE_STEP_S:.1f})"
        )
        if row.get("extrapolated"):
            bits.append(f"EXTRAPOLATED from {row['measured_steps']} measured steps")
    if s == "enhance":
        bits.append("stand-in MossFormer2" + (f", load {row.get('load_s')} s" if row.get("load_s") else ""))
    if s == "features" and row.get("dtype"):
        bits.append(row["dtype"])
    if s == "convert":
        bits.append(
            f"8 s of joe_000.wav, v2/40k rmvpe, index 0.75 ({row.get('timed_cpu_s')} CPU s; bench.bench_convert)"
        )
    if s == "zip" and row.get("zip_mib"):
        bits.append(f"{row['zip_mib']} MiB")
    if row.get("runs_wall_s"):
        bits.append("median of " + "/".join(str(x) for x in row["runs_wall_s"]))
    return "; ".join(bits)


def summaries(rows: list[dict[str, Any]], set_name: str, audio_s: float) -> list[dict[str, Any]]:
    by = {r["stage"]: r for r in rows if r["set"] == set_name and "error" not in r}
    out = []
    for label, stages, ref_stages in (
        ("non-training (preprocess+f0-rmvpe+features+index)", NON_TRAINING, NON_TRAINING),
        ("non-training + zip", (*NON_TRAINING, "zip"), NON_TRAINING),
        ("end to end, 1 epoch", END_TO_END, None),
    ):
        if not all(s in by for s in stages):
            continue
        wall = sum(by[s]["wall_s"] for s in stages)
        cpu = sum(by[s].get("cpu_s") or 0.0 for s in stages)
        ref = None
        if ref_stages and all(set_name in REFERENCE_S.get(s, {}) for s in ref_stages):
            ref = sum(REFERENCE_S[s][set_name] for s in ref_stages)
        extrap = any(by[s].get("extrapolated") for s in stages)
        out.append(
            {
                "set": set_name,
                "stage": label,
                "summary": True,
                "wall_s": round(wall, 2),
                "cpu_s": round(cpu, 2),
                "rtf": round(wall / audio_s, 5) if audio_s else None,
                "peak_rss_gb": max(by[s].get("peak_rss_gb", 0) for s in stages),
                "reference_s": ref,
                "speedup": round(ref / wall, 2) if ref else None,
                "note": "train EXTRAPOLATED" if extrap else "",
            }
        )
    return out


def print_table(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    header = ["set", "stage", "wall s", "CPU s", "RTF", "peak RSS GB", "ref s", "x ref", "ref RSS GB", "note"]
    body = [
        [
            r["set"],
            ("**" + r["stage"] + "**") if r.get("summary") else r["stage"],
            r.get("wall_s"),
            r.get("cpu_s"),
            None if r.get("rtf") is None else f"{r['rtf']:.4f}",
            r.get("peak_rss_gb"),
            r.get("reference_s"),
            r.get("speedup"),
            r.get("reference_rss_gb"),
            r.get("note") if r.get("summary") else note_for(r),
        ]
        for r in rows
    ]
    gpu = f", GPU {info['gpu']}" if info.get("gpu") else ""
    text = (
        f"device: {info['cpu']} ({info['cores']} cores, {info['memory_gb']} GB), torch {info['torch']} "
        f"{info['torch_threads']} threads{gpu}; load average before/after {info['loadavg']} / "
        f"{info.get('loadavg_after')}\n\n" + markdown_table(header, body)
    )
    print(text, flush=True)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", default=None, help="comma list of data set names under ../shared/data or folders")
    ap.add_argument("--stages", default=None, help=f"comma list (default: all): f0, {', '.join(STAGES)}")
    ap.add_argument("--skip", default=None, help="comma list of stages to leave out (e.g. enhance)")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny synthesizer, batch 2, few stages")
    ap.add_argument("--out", type=Path, default=None, help="JSON output (default bench/results/<cpu|gpu>-<date>.json)")
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="training batch size (default 4)")
    ap.add_argument(
        "--train-steps",
        default="joe_10min=3",
        help="measure N steps and extrapolate the epoch: 'N' for every set or 'set=N,...' (0 = the whole "
        "epoch; default joe_10min=3)",
    )
    ap.add_argument("--repeat", type=int, default=1, help="runs of each non-training stage; the median is used")
    ap.add_argument("--device", default=None, help="cpu | cuda (default: CUDA when present)")
    ap.add_argument("--weights", type=Path, default=None, help="weights folder in the published layout")
    ap.add_argument("--keep", type=Path, default=None, help="keep the experiment folders and logs here")
    args = ap.parse_args(argv)

    import torch

    cuda = torch.cuda.is_available() and (args.device or "cuda").startswith("cuda")
    stages = select_stages(args, cuda)
    sets = [s.strip() for s in (args.data or ("joe_1min" if args.quick else "joe_1min,joe_10min")).split(",")]
    steps_for: dict[str, int] = {}
    for part in str(args.train_steps).split(","):
        if "=" in part:
            k, v = part.split("=", 1)
            steps_for[k.strip()] = int(v)
        elif part.strip():
            steps_for.update({s: int(part) for s in sets})
    info = device_info()
    info["device"] = "cuda" if cuda else "cpu"
    weights = weights_for(stages, args.weights)
    rows: list[dict[str, Any]] = []
    tmp = tempfile.mkdtemp(prefix="rvc-bench-") if args.keep is None else None
    root = Path(tmp) if tmp is not None else Path(args.keep)
    try:
        for set_name in sets:
            src = data_dir(set_name)
            files = audio_files(src)
            if not files:
                raise SystemExit(f"no audio files in {src}")
            label = src.name
            audio_s = audio_seconds(files)
            exp_root = root / label
            logs = root / f"{label}-logs"
            exp_root.mkdir(parents=True, exist_ok=True)
            logs.mkdir(parents=True, exist_ok=True)
            for stage in stages:
                spec = {
                    "stage": stage,
                    "files": [str(f) for f in files],
                    "exp_root": str(exp_root),
                    "weights": weights,
                    "quick": args.quick,
                    "batch": 2 if args.quick and args.batch == DEFAULT_BATCH else args.batch,
                    "device": args.device,
                    "train_steps": steps_for.get(label) or None,
                }
                n = 1 if stage == "train" else max(1, args.repeat)
                walls, res = [], {}
                load = os.getloadavg()[0]
                for _ in range(n):
                    res = run_stage(dict(spec), logs / f"{stage}.log")
                    if "error" in res:
                        break
                    walls.append(float(res["wall_s"]))
                res["loadavg_before"] = round(load, 2)
                row = row_for(label, stage, res, audio_s, walls)
                rows.append(row)
                shown = "FAILED " + res["error"] if "error" in res else f"{row['wall_s']:.2f} s"
                print(f"[bench] {label} {stage}: {shown} (load {load:.1f})", file=sys.stderr, flush=True)
                if "error" in res:
                    print(res.get("log_tail", ""), file=sys.stderr, flush=True)
            rows += summaries(rows, label, audio_s)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    info["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    table = print_table(rows, info)
    out = args.out or REPO / "bench" / "results" / f"{'gpu' if cuda else 'cpu'}-{datetime.now(UTC):%Y-%m-%d}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": " ".join(["python -m bench.run", *(argv if argv is not None else sys.argv[1:])]),
                "device": info,
                "stages": stages,
                "quick": args.quick,
                "rows": rows,
                "table": table,
            },
            indent=1,
            default=str,
        )
        + "\n"
    )
    print(f"\nwrote {out}", file=sys.stderr)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
