"""Real-time factors of the HuBERT feature stage on ../shared/data/joe_1min and joe_10min.

    .venv/bin/python -m bench.bench_features                    # v2, CPU, both sets, + one-by-one baseline
    .venv/bin/python -m bench.bench_features --sets joe_1min --version v1 --no-baseline
    .venv/bin/python -m bench.bench_features --device cuda      (on a GPU machine: fp16)

The audio goes through the preprocess stage (slicing, 3.7 s segments at 16 kHz, as training does; a
plain 3.7 s cut when that stage is unavailable), then `extract_features` runs on the segments with the
cache disabled. Its wall time includes loading the checkpoint and writing the outputs, like the
reference `extract_feature_print.py` run it is compared with. The weights are a full-size stand-in
`hubert_base.pt` (`tools.standin_writers.write_standin_hubert(size="base")`): speed does not depend on the values.

`baseline` runs the same network the way the reference script does (one segment per forward pass,
`torch.no_grad`, separate q/k/v projections) in this process, right after the stage, so the ratio of the
two is measured under the same machine load. Reference figures (bench-cpu.md, 2-core EPYC, torch 2.13
CPU, 2 threads, v2 fp32): joe_1min 15.0 s, joe_10min 77 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from bench.common import SHARED, print_rows

REFERENCE_S = {"joe_1min": 15.0, "joe_10min": 77.0}


def make_segments(src_dir: Path, exp_root: Path, version: str) -> tuple[str, float]:
    """16 kHz segments of every wav in `src_dir` under `exp_root`; returns (how, audio seconds)."""
    import soundfile as sf

    from infer.lib.layout import ExperimentLayout

    exp = ExperimentLayout(exp_root, version)
    files = sorted(src_dir.glob("*.wav"))
    how = "preprocess stage"
    try:
        from infer.modules.train.preprocess import preprocess

        preprocess(files, exp, 40000)
    except Exception as e:  # the bench still runs when the preprocess stage is unavailable
        how = f"plain 3.7 s cut (preprocess failed: {type(e).__name__}: {e})"
        from infer.lib.audio import load_audio

        exp.wavs16k_dir.mkdir(parents=True, exist_ok=True)
        n = 59200
        for i, wav in enumerate(files):
            audio = load_audio(wav, 16000)
            for j in range(0, len(audio), n - 4800):
                if len(audio[j : j + n]) >= 1600:
                    sf.write(str(exp.wavs16k_dir / f"{i}_{j}.wav"), audio[j : j + n], 16000, subtype="FLOAT")
    total = sum(sf.info(str(p)).frames for p in exp.wavs16k_dir.glob("*.wav")) / 16000
    return how, total


def baseline_seconds(weights: Path, exp_root: Path, version: str) -> float:
    """The reference's loop on our network: load, then one segment per pass under no_grad."""
    import numpy as np
    import torch

    from infer.lib.audio import list_segments, read_wav16k
    from infer.lib.hubert import load_hubert
    from infer.lib.hubert_layers import SelfAttention

    start = time.monotonic()
    model = load_hubert(weights, "cpu")
    model.train(False)  # eval without the fused q/k/v projections of prepare_inference
    for m in model.modules():
        if isinstance(m, SelfAttention):
            m.unfuse()
    out = exp_root / "baseline"
    out.mkdir(exist_ok=True)
    for p in list_segments(exp_root / "1_16k_wavs"):
        with torch.no_grad():
            f = model.extract(torch.from_numpy(read_wav16k(p))[None], None, version)[0].numpy()
        if not np.isnan(f).any():
            np.save(out / f"{p.stem}.npy", f, allow_pickle=False)
    return time.monotonic() - start


def bf16_deviation(weights: Path, exp_root: Path, version: str) -> float:
    """max |bf16 - fp32| / max |fp32| over the features written by the bf16 run (first 4 segments)."""
    import numpy as np
    import torch

    from infer.lib.audio import list_segments, read_wav16k
    from infer.lib.hubert import load_hubert

    model = load_hubert(weights, "cpu").prepare_inference()
    worst = 0.0
    for p in list_segments(exp_root / "1_16k_wavs")[:4]:
        with torch.inference_mode():
            ref = model.extract(torch.from_numpy(read_wav16k(p))[None], None, version)[0].numpy()
        got = np.load(exp_root / f"3_feature{ref.shape[1]}" / f"{p.stem}.npy")
        worst = max(worst, float(np.abs(got - ref).max() / np.abs(ref).max()))
    return round(worst, 5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=["joe_1min", "joe_10min"])
    ap.add_argument("--version", default="v2", choices=["v1", "v2"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, = cores)")
    ap.add_argument("--batch-seconds", type=float, default=None, help="audio seconds per forward pass")
    ap.add_argument("--weights", type=Path, default=None, help="a hubert_base.pt (default: a full-size stand-in)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the one-by-one baseline")
    ap.add_argument(
        "--bf16",
        action="store_true",
        help="experiment: run the CPU model in bfloat16 (not what the stage does; reports the deviation from fp32)",
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    import torch

    from infer.lib.cache import ArrayCache
    from infer.lib.hubert import HubertModel, load_hubert
    from infer.lib.layout import ExperimentLayout
    from infer.lib.log import setup_logging
    from infer.modules.train.extract_features import extract_features
    from tools.standin_writers import write_standin_hubert

    setup_logging()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-features-") as tmp:
        weights = args.weights or write_standin_hubert(Path(tmp) / "hubert_base.pt", size="base")
        for name in args.sets:
            root = Path(tmp) / name
            how, audio_s = make_segments(SHARED / "data" / name, root, args.version)
            load_before = os.getloadavg()[0]
            hubert: HubertModel | Path = weights
            if args.bf16:
                hubert = load_hubert(weights, "cpu").to(torch.bfloat16).prepare_inference()
            report = extract_features(
                ExperimentLayout(root, args.version),
                hubert,
                args.device,
                ArrayCache(None),
                batch_seconds=args.batch_seconds,
            )
            row = {
                "set": name,
                "segments": report.n_files,
                "audio_s": round(audio_s, 1),
                "segmenting": how,
                "wall_s": round(report.wall_seconds, 2),
                "load_s": round(report.load_seconds, 2),
                "rtf": round(report.rtf, 4),
                "forward_passes": report.n_forward_passes,
                "device": report.device,
                "dtype": report.dtype,
                "threads": torch.get_num_threads(),
                "loadavg_1min_before": round(load_before, 2),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            }
            if args.version == "v2" and args.device == "cpu" and name in REFERENCE_S:
                row["reference_wall_s"] = REFERENCE_S[name]
                row["speedup_vs_reference"] = round(REFERENCE_S[name] / report.wall_seconds, 2)
            if args.bf16:
                row["bf16_rel_error_vs_fp32"] = bf16_deviation(Path(weights), root, args.version)
            if not args.no_baseline and args.device == "cpu":
                base = baseline_seconds(Path(weights), root, args.version)
                row["baseline_one_by_one_s"] = round(base, 2)
                row["speedup_vs_baseline"] = round(base / report.wall_seconds, 2)
            rows.append(row)
            print(json.dumps(row), flush=True)
    columns = [("set", "set"), ("audio s", "audio_s"), ("segments", "segments"), ("wall s", "wall_s"), ("RTF", "rtf")]
    columns += [("reference s", "reference_wall_s"), ("x ref", "speedup_vs_reference")]
    columns += [("one-by-one s", "baseline_one_by_one_s"), ("x one-by-one", "speedup_vs_baseline")]
    print_rows(rows, [*columns, ("load avg", "loadavg_1min_before")], args.json)


if __name__ == "__main__":
    main()
