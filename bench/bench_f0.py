"""Real-time factors of the pitch stage per method, on ../shared/data/joe_1min and joe_10min.

    .venv/bin/python -m bench.bench_f0                       # pm harvest dio rmvpe fcpe on both sets
    .venv/bin/python -m bench.bench_f0 --methods rmvpe --sets joe_1min --workers 1
    .venv/bin/python -m bench.bench_f0 --methods rmvpe_gpu --device cuda   (on a GPU machine)

The audio is resampled to 16 kHz and cut into 3.7 s segments (the preprocess stage's length), then the
`extract_f0` stage runs on them with the cache disabled: wall time includes worker start-up, model
loading and writing the outputs, like the reference `extract_f0_print.py` run it is compared with.
RMVPE uses a full-size stand-in `rmvpe.pt` (speed does not depend on the values).
The machine may be shared: the table also gives the CPU seconds of all processes and the load average,
so a wall time taken under contention can be told apart (CPU s / cores ~ the wall time on an idle machine).
Reference figures (bench-cpu.md, 2-core EPYC, n_p=2, joe_10min): pm 9.5 s, harvest 74 s, dio 10.4 s,
rmvpe 175 s; joe_1min: pm 1.4 s, harvest 7.4 s, dio 1.5 s, rmvpe 24.7 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.common import SHARED, print_rows

REFERENCE_S = {
    "joe_1min": {"pm": 1.4, "harvest": 7.4, "dio": 1.5, "rmvpe": 24.7},
    "joe_10min": {"pm": 9.5, "harvest": 74.0, "dio": 10.4, "rmvpe": 175.0},
}


def make_segments(src_dir: Path, dst_dir: Path, seconds: float = 3.7) -> float:
    """Every wav of `src_dir` -> 16 kHz mono segments of `seconds` in `dst_dir`; returns total seconds."""
    import soundfile as sf

    from infer.lib.audio import load_audio

    dst_dir.mkdir(parents=True, exist_ok=True)
    total = 0.0
    n = int(seconds * 16000)
    for i, wav in enumerate(sorted(src_dir.glob("*.wav"))):
        audio = load_audio(wav, 16000)
        for j in range(0, len(audio), n):
            seg = audio[j : j + n]
            if len(seg) < 1600:
                continue
            sf.write(str(dst_dir / f"{i}_{j // n}.wav"), seg, 16000, subtype="PCM_16")
            total += len(seg) / 16000
    return total


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children (the pool's workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--methods", nargs="+", default=["pm", "harvest", "dio", "rmvpe", "fcpe"])
    ap.add_argument("--sets", nargs="+", default=["joe_1min", "joe_10min"])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=None, help="processes for CPU methods (default: all cores)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per (set, method); the median is printed")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = ap.parse_args()

    from infer.lib.cache import ArrayCache
    from infer.lib.layout import ExperimentLayout
    from infer.lib.log import setup_logging
    from infer.modules.train.extract_f0 import extract_f0
    from tools.standin_writers import write_standin_rmvpe

    setup_logging()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rmvpe_path = write_standin_rmvpe(Path(tmp) / "rmvpe.pt")
        for set_name in args.sets:
            exp = ExperimentLayout(Path(tmp) / set_name)
            seconds = make_segments(SHARED / "data" / set_name, exp.wavs16k_dir)
            for method in args.methods:
                walls, cpus = [], []
                for _ in range(args.repeat):
                    c0 = _cpu_seconds()
                    t0 = time.monotonic()
                    rep = extract_f0(
                        exp, method, ArrayCache(None), device=args.device, rmvpe_path=rmvpe_path, n_workers=args.workers
                    )
                    walls.append(time.monotonic() - t0)
                    cpus.append(_cpu_seconds() - c0)
                wall, cpu = float(np.median(walls)), float(np.median(cpus))
                ref = REFERENCE_S.get(set_name, {}).get(method.replace("_gpu", ""))
                rows.append(
                    {
                        "set": set_name,
                        "method": method,
                        "audio_s": round(seconds, 1),
                        "wall_s": round(wall, 2),
                        "rtf": round(wall / seconds, 4),
                        "cpu_s": round(cpu, 2),
                        "load": round(os.getloadavg()[0], 1),
                        "reference_s": ref,
                        "speedup": round(ref / wall, 2) if ref else None,
                        "workers": rep.n_workers,
                        "voiced": rep.voiced_fraction,
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    columns = [("set", "set"), ("method", "method"), ("audio s", "audio_s"), ("wall s", "wall_s"), ("RTF", "rtf")]
    columns += [("CPU s (all processes)", "cpu_s"), ("load avg", "load"), ("reference s", "reference_s")]
    columns += [("speed-up", "speedup"), ("workers", "workers")]
    print_rows(rows, columns, args.json)


if __name__ == "__main__":
    main()
